"""The book's concepts, readable first: functions, activations, layers, networks, initial weights,
optimizers and the textbook numerical gradient. Nothing here imports the rest of sgdlab."""
