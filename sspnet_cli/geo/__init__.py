"""Georeferencing: pixel (GDAL corner convention) <-> map CRS <-> WGS84 lon/lat."""
from sspnet_cli.geo.transform import (
    box_centers_lonlat,
    box_rings_lonlat,
    georef_problem,
    lonlat_to_map,
    lonlat_to_pixel,
    map_to_lonlat,
    map_to_pixel,
    pixel_box_rings,
    pixel_to_lonlat,
    pixel_to_map,
)

__all__ = [
    "box_centers_lonlat",
    "box_rings_lonlat",
    "georef_problem",
    "lonlat_to_map",
    "lonlat_to_pixel",
    "map_to_lonlat",
    "map_to_pixel",
    "pixel_box_rings",
    "pixel_to_lonlat",
    "pixel_to_map",
]
