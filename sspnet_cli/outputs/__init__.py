"""Result files (GeoJSON, CSV, COCO JSON) written atomically; overlays in :mod:`.overlay`."""
from sspnet_cli.atomic import atomic_write, check_writable
from sspnet_cli.outputs.writers import write_results

__all__ = ["atomic_write", "check_writable", "write_results"]
