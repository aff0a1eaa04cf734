"""Simulated arm node of DSRL."""

from setuptools import find_packages, setup

package_name = 'dsrl_sim_node'

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
    description="Simulated arm node: the MuJoCo push task behind the real arm's interface.",
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim_node = dsrl_sim_node.sim_node:main',
        ],
    },
)
