"""Bringup package of DSRL: installs the repository's launch/ and config/ into share/dsrl."""

import glob
import os

from setuptools import find_packages, setup

package_name = 'dsrl'
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, '..', '..'))


def repo_files(folder: str, pattern: str) -> list:
    """
    Return the files of the repository's top-level ``folder`` matching ``pattern``.

    The paths are relative to this file's folder (../../folder/...), as setuptools requires.
    """
    return sorted(os.path.relpath(p, HERE)
                  for p in glob.glob(os.path.join(REPO, folder, pattern)))


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', repo_files('launch', '*.launch.py')),
        ('share/' + package_name + '/config', repo_files('config', '*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='DSRL developers',
    maintainer_email='dev@dsrl-robotics.example.com',
    description='DSRL bringup: node graph, launch file, params file and the dsrl CLI.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'dsrl = dsrl.cli:main',
        ],
    },
)
