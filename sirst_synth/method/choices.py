"""The method's fixed vocabularies, defined once and importable without numpy or OpenCV
(the CLI builds its choices from them)."""

#: how a noise patch is fitted to an image: bilinear resize, or the patch repeated (docs/method.md section 3)
FITS = ("resize", "tile")
#: the rotations k (counter-clockwise k * 90 degrees) that make negatives; k = 0 is the input itself
#: (docs/method.md section 4)
ROTATIONS = (1, 2, 3)
#: channels of a generated image: 1 (8-bit gray, what the method computes) or 3 (R=G=B, for
#: loaders that need three channels) (docs/method.md section 3)
CHANNELS = (1, 3)
