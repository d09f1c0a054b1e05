"""Where the model card's usage imports the runner from (``kompress.inference.pytorch_runner``)."""
