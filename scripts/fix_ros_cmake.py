#!/usr/bin/env python3
"""
Repair the build-machine paths hard-coded in the ROS 2 PyPI wheels' CMake files.

The wheels' exported ``share/**/*.cmake`` files name the Python include directory and the numpy
include directory of the machine that built them (``/opt/python/cp311-cp311/...``). CMake then
fails with "Imported target ... includes non-existent path". This rewrites those prefixes to the
paths of the interpreter running this script. Idempotent: a second run changes nothing.
"""

import pathlib
import sys
import sysconfig

BUILD_INCLUDE = '/opt/python/cp311-cp311/include/python3.11'
BUILD_PURELIB = '/opt/python/cp311-cp311/lib/python3.11/site-packages'


def fix(prefix: pathlib.Path) -> int:
    """Rewrite every CMake file under ``prefix/share``; return how many files changed."""
    paths = sysconfig.get_paths()
    changed = 0
    for path in sorted((prefix / 'share').rglob('*.cmake')):
        text = path.read_text(encoding='utf-8', errors='surrogateescape')
        if BUILD_INCLUDE not in text and BUILD_PURELIB not in text:
            continue
        text = text.replace(BUILD_INCLUDE, paths['include'])
        text = text.replace(BUILD_PURELIB, paths['purelib'])
        path.write_text(text, encoding='utf-8', errors='surrogateescape')
        changed += 1
    return changed


def main() -> int:
    prefix = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    changed = fix(prefix)
    print(f'fix_ros_cmake: rewrote build-machine paths in {changed} CMake file(s) under {prefix}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
