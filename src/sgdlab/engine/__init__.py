"""What computes the same numbers as `sgdlab.nn`, faster: the training step on buffers allocated once,
the whole-set forward pass, the fast numerical gradient, BLAS threads and timing."""
