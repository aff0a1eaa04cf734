"""Learner node of DSRL."""

from setuptools import find_packages, setup

package_name = 'dsrl_learner_node'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='DSRL developers',
    maintainer_email='dev@dsrl-robotics.example.com',
    description='Learner node: asynchronous DSRL training, signed weights, checkpoints.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'learner_node = dsrl_learner_node.learner_node:main',
        ],
    },
)
