"""What the entry points run: plain functions of a composed config."""
