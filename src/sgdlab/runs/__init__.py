"""What a run leaves behind: the run folder, model files, and a whole run from folder to saved results."""
