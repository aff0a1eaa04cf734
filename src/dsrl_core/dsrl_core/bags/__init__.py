"""
Rosbag2 (MCAP) bags of DSRL runs, without ROS: write, read, analyse, learn from.

* :mod:`~dsrl_core.bags.writer` - ``BagWriter``: serialized messages into a rosbag2 MCAP bag
  (rosbags' MCAP storage), split by size or duration, flushed so that a killed recorder loses
  little, provenance stored in ``metadata.yaml`` and in each file.
* :mod:`~dsrl_core.bags.reader` - ``open_bag``: decoded messages and numpy arrays from a bag,
  with the definitions stored in the bag; unfinished files are read up to their last complete
  record and the loss is reported.
* :mod:`~dsrl_core.bags.types` - the typestores (installed ``.msg`` definitions; stored ones).
* :mod:`~dsrl_core.bags.recording` - what the recorder records (topics, derived records,
  provenance); the recorder node itself is ``dsrl.record`` (it needs rclpy).
* :mod:`~dsrl_core.bags.analysis` - ``analyze``: CSV, PNG and markdown reports of runs.
* :mod:`~dsrl_core.bags.learn` - ``load_transitions`` (into a ReplayBuffer) and ``bag_to_demos``
  (into the BC demonstration format).
* :mod:`~dsrl_core.bags.cli` - ``info``, ``analyze``, ``to-buffer``, ``to-demos`` commands.
"""

from dsrl_core.bags.reader import Bag, BagError, BagMessage, Damage, open_bag

__all__ = ['Bag', 'BagError', 'BagMessage', 'Damage', 'open_bag']
