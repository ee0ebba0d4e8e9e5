"""Reading benchmark releases into the DNANet layout (``import``) and writing a dataset in the
layouts other trainers read (``export``), with split fingerprints and image statistics."""
