"""Imagery: reading frames and windows of images and rasters (JPEG/PNG via OpenCV, GDAL rasters
via rasterio, never whole), EXIF/XMP metadata, image sizes from headers, the tile window grid
and the expansion of inputs (files, folders, globs). Every layer above reads pixels through here.
"""
