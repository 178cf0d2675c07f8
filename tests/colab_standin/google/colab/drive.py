"""Stand-in for ``google.colab.drive``: ``mount(mountpoint)`` links ``<mountpoint>/MyDrive`` to the
folder named by ``$COLAB_STANDIN_MYDRIVE`` (the test's "Google Drive") and prints what Colab prints."""

import os
from pathlib import Path


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    point = Path(mountpoint)
    link = point / "MyDrive"
    if link.exists() and not force_remount:
        print(f"Drive already mounted at {mountpoint}; to attempt to forcibly remount, call "
              f'drive.mount("{mountpoint}", force_remount=True).')
        return
    point.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(os.environ["COLAB_STANDIN_MYDRIVE"], target_is_directory=True)
    print(f"Mounted at {mountpoint}")
