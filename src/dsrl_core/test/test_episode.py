"""Episode manager: every transition, time limit, human override, camera loss, resets."""

from dsrl_core.episode import Command, EpisodeManager, Label, Phase
import pytest


def run_steps(m, t0, n, dt=0.1):
    rewards = []
    for i in range(n):
        r = m.step(t0 + (i + 1) * dt)
        if r is None:
            break
        rewards.append(r)
    return rewards


def test_detector_success_then_sim_reset():
    m = EpisodeManager(time_limit_s=5.0, result_hold_s=0.5)
    assert m.phase == Phase.READY and m.episode_id == 0
    assert m.step(0.0) is None
    assert m.start(0.0).accepted and m.phase == Phase.RUNNING and m.episode_id == 1
    assert not m.start(0.1).accepted
    assert run_steps(m, 0.0, 3) == [-1.0, -1.0, -1.0]
    m.observe(True)
    assert m.step(0.4) == 0.0
    assert m.phase == Phase.SUCCESS and m.reason == 'detector'
    rec = m.record
    assert rec.success and rec.detector_success and rec.terminated and not rec.truncated
    assert (rec.length, rec.episode_return) == (4, -3.0)
    m.tick(0.6)
    assert m.phase == Phase.SUCCESS  # held for result_hold_s
    m.tick(0.95)
    assert m.phase == Phase.RESETTING and m.reset_stage == 'sim'
    assert not m.confirm_reset(1.0).accepted  # sim advances by itself
    assert not m.sim_reset_finished(1.0, False, 'busy').accepted and m.sim_reset_failures == 1
    assert m.sim_reset_finished(1.1, True).accepted and m.phase == Phase.READY
    st = m.status(1.2)
    assert st['phase'] == Phase.READY and st['episode_id'] == 1 and st['success']


def test_time_limit():
    m = EpisodeManager(time_limit_s=1.0, auto_reset=False)
    m.start(10.0)
    rewards = run_steps(m, 10.0, 30)
    assert len(rewards) == 10 and all(r == -1.0 for r in rewards)
    assert m.phase == Phase.TIMEOUT and m.reason == 'time_limit'
    assert m.record.truncated and not m.record.success and m.record.counts_for_learning
    m.tick(100.0)
    assert m.phase == Phase.TIMEOUT  # auto_reset off
    assert m.command(Command.RESET, 100.0).accepted and m.phase == Phase.RESETTING


def test_human_label_overrides_detector_both_recorded():
    m = EpisodeManager(time_limit_s=5.0)
    m.start(0.0)
    assert m.label(True, 0.05).accepted
    assert m.step(0.1) == 0.0 and m.phase == Phase.SUCCESS and m.reason == 'human_label'
    assert m.record.human_label == Label.SUCCESS and not m.record.detector_success
    # after the end, a failure label overrides the outcome, the detector's decision is kept
    m2 = EpisodeManager(time_limit_s=5.0)
    m2.start(0.0)
    m2.observe(True)
    m2.step(0.1)
    assert m2.phase == Phase.SUCCESS and m2.record.success
    assert m2.label(False, 0.2, episode_id=1, note='puck fell').accepted
    assert not m2.record.success and m2.record.detector_success
    assert m2.status(0.3)['human_label'] == Label.FAILURE and not m2.status(0.3)['success']
    assert not m2.label(True, 0.3, episode_id=7).accepted  # unknown episode
    # a failure label while running ends it as a (terminated) failure
    m3 = EpisodeManager(time_limit_s=5.0)
    m3.start(0.0)
    m3.label(False, 0.0)
    assert m3.step(0.1) == -1.0 and m3.phase == Phase.TIMEOUT and m3.reason == 'human_label'
    assert m3.record.terminated and not m3.record.truncated


def test_labels_refused_before_first_and_after_reset():
    m = EpisodeManager(time_limit_s=5.0, result_hold_s=0.0)
    assert not m.label(True, 0.0).accepted
    m.start(0.0)
    m.stop(0.1)
    m.tick(0.1)
    m.sim_reset_finished(0.2, True)
    r = m.label(True, 0.3)
    assert not r.accepted and 'already reset' in r.message


def test_camera_loss_aborts_as_truncated():
    m = EpisodeManager(time_limit_s=5.0, result_hold_s=0.0)
    assert not m.camera_lost(0.0).accepted  # nothing running
    m.start(0.0)
    m.step(0.1)
    assert m.camera_lost(0.2).accepted
    assert m.phase == Phase.ABORTED and m.reason == 'camera_lost'
    assert m.record.truncated and not m.record.counts_for_learning
    assert m.step(0.3) is None
    m.tick(0.3)
    m.sim_reset_finished(0.4, True)
    r = m.command(Command.START, 0.5, camera_ok=False)
    assert not r.accepted and 'camera' in r.message and m.phase == Phase.READY
    m2 = EpisodeManager(time_limit_s=5.0, auto_start=True)
    m2.tick(0.0, camera_ok=False)
    assert m2.phase == Phase.READY


def test_real_robot_reset_needs_homing_and_confirm():
    m = EpisodeManager(time_limit_s=5.0, sim=False, result_hold_s=0.0, auto_start=True)
    m.tick(0.0)
    assert m.phase == Phase.RUNNING and m.reason == 'auto_start'
    assert m.command(Command.ABORT, 0.1, 'operator').accepted and m.phase == Phase.ABORTED
    m.tick(0.1)
    assert m.phase == Phase.RESETTING and m.reset_stage == 'homing'
    assert not m.command(Command.RESET_DONE, 0.2).accepted  # still homing
    assert not m.sim_reset_finished(0.2, True).accepted
    assert m.homing_finished(0.3).accepted and m.reset_stage == 'await_confirm'
    assert m.command(Command.RESET_DONE, 0.4, 'person').accepted and m.phase == Phase.READY


@pytest.mark.parametrize('phase_cmds, cmd', [
    ([], Command.STOP), ([], Command.ABORT), ([], Command.RESET), ([], Command.RESET_DONE),
    ([Command.START], Command.RESET), ([Command.START], Command.START),
])
def test_invalid_commands_are_refused(phase_cmds, cmd):
    m = EpisodeManager(time_limit_s=5.0)
    for c in phase_cmds:
        assert m.command(c, 0.0).accepted
    before = (m.phase, m.changes)
    r = m.command(cmd, 0.1)
    assert not r.accepted and 'phase is' in r.message or 'stage' in r.message
    assert (m.phase, m.changes) == before
    assert not m.command(99, 0.1).accepted


def test_bad_construction():
    with pytest.raises(ValueError):
        EpisodeManager(time_limit_s=0.0)
