"""The dataset HDF5 file of ``build --format h5``, in one place; its specification is docs/output.md,
"The HDF5 file".

- :mod:`.format`: constants and the PNG-scanline filters
- :mod:`.stored`: an image and its mask as the file stores them (one gzip chunk each)
- :mod:`.writer`: :class:`~.writer.H5Writer`, the single process that writes the file
- :mod:`.reader`: :class:`~.reader.H5Dataset`, reading it like a dataset folder
- :mod:`.units`: a build unit's stored images in one file, while the build runs
"""
