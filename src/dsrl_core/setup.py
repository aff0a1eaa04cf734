"""ROS-free core of DSRL (no rclpy import anywhere in this package)."""

from setuptools import find_packages, setup

package_name = 'dsrl_core'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['sim/assets/*.xml', 'assets/*', 'assets/*/*']},
    include_package_data=True,
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='DSRL developers',
    maintainer_email='dev@dsrl-robotics.example.com',
    description='ROS-free core of DSRL: diffusion policy, MuJoCo task, noise-space SAC/NA.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [],
    },
)
