"""Reward/episode node and keyboard teleop of DSRL."""

from setuptools import find_packages, setup

package_name = 'dsrl_reward_node'

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
    description='Reward/episode node (camera success detection, resets) and keyboard teleop.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'reward_node = dsrl_reward_node.reward_node:main',
            'dsrl_teleop = dsrl_reward_node.teleop_cli:main',
        ],
    },
)
