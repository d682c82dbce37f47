"""`slimkit datasets`: the datasets slimkit knows, their sizes, and where they would be read from.

For each dataset the table shows the folder that ``slimkit train --dataset NAME`` would read now
(``--data-dir``, else ``$SLIMKIT_DATA_DIR/<name>``, the user cache, or a system copy; see
:mod:`slimkit.data.registry`), which rule chose it, and the state of the files there: present and
checksum-verified, missing (to be downloaded, from which host), or corrupt (checksum mismatch).

``--data-dir`` must be a folder (or a path where one can be made); a file is an error, exit 2. When
``$SLIMKIT_DATA_DIR`` holds the files itself instead of ``mnist/``, a note says to point it at the
folder above.

Exit code 0, or 1 when a file that is present fails its checksum (so scripts can check a data
folder with ``slimkit datasets mnist --data-dir DIR``). Imports no TensorFlow.
"""

import urllib.parse


def configure(parser):
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="datasets to show (default: all)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="the folder that holds a dataset's files (like the tutorial's "
                             "MNIST_data); default: $SLIMKIT_DATA_DIR/<name>, then the user cache")


def run(args):
    from slimkit.data import registry

    names = args.names or registry.list_datasets()
    infos = [registry.get_dataset_info(n) for n in names]  # unknown name -> ValueError, exit 2
    rows, corrupt = [], False
    for info in infos:
        folder, source = registry.locate(info.name, args.data_dir)
        status, bad = _status(registry, info, folder)
        corrupt = corrupt or bad
        h, w, c = info.image_shape
        rows.append((info.name, f"{h}x{w}x{c}", str(info.num_classes), f"{info.num_train:,}",
                     f"{info.num_test:,}", f"{folder} ({source})", status))
    header = ("name", "image", "classes", "train", "test", "location", "status")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    print("\ntrain = the training file; 5,000 of it are held out for validation by default. "
          "Offline: put the files in the folder shown (README: 'Where data comes from').")
    hint = None if args.data_dir else registry.data_root_mistake()
    if hint:
        print(f"Note: {hint}")
    return 1 if corrupt else 0


def _status(registry, info, folder):
    """(text, has_corrupt_file) for the files of ``info`` in ``folder``."""
    from slimkit.data.download import _mirror_list, matches

    missing, bad = [], []
    for data_file in info.files:
        path = registry.find_file(folder, data_file)
        if path is None:
            missing.append(data_file.name)
        elif not matches(path, data_file):
            bad.append(path.name)
    parts = []
    if bad:
        parts.append(f"CORRUPT (checksum mismatch): {', '.join(bad)}; delete to re-download")
    if missing:
        mirrors = _mirror_list(info, None)
        host = urllib.parse.urlsplit(mirrors[0]).netloc or mirrors[0] if mirrors else "no mirror"
        parts.append(f"{len(missing)} of {len(info.files)} files missing: would be downloaded "
                     f"from {host}")
    if not parts:
        parts.append("present, checksums verified")
    return "; ".join(parts), bool(bad)
