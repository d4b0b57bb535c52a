"""What makes an output (its recipe) and how it is made."""
