"""Live sources end to end: MPEG-TS over loopback TCP, a pipe on standard input, a stalled stream, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from dsfnet.inference.video_io import LiveSource, is_live_input, open_source
from inferencehelpers import decode_all, mpegts_frames, write_video


class MpegTsServer:
    """Listens on 127.0.0.1 (a free port); the first client gets an H.264 MPEG-TS stream written by PyAV from a
    thread: ``frames`` frames (None: until the client goes away or ``stop`` is set), ``pace`` seconds apart, then
    the stream ends, or stays open without sending more while ``hold`` is set (a stall)."""

    def __init__(self, frames=None, pace: float = 0.0, hold: bool = False):
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self._socket.getsockname()[1]}"
        self.frames, self.pace = frames, pace
        self.hold = threading.Event()
        if hold:
            self.hold.set()
        self.stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        self._socket.settimeout(0.2)
        while not self.stop.is_set():
            try:
                connection, _ = self._socket.accept()
                break
            except TimeoutError:
                continue
        else:
            return self._socket.close()
        connection.settimeout(None)
        try:
            with connection, connection.makefile("wb") as stream:
                frames = mpegts_frames(stream, pace=self.pace)
                for self.sent in frames:
                    if self.stop.is_set() or (self.frames is not None and self.sent >= self.frames):
                        break
                while self.hold.is_set() and not self.stop.is_set():
                    time.sleep(0.05)
                frames.close()  # the end of the stream
        except (BrokenPipeError, ConnectionResetError, av.FFmpegError):
            pass  # the client went away
        finally:
            self._socket.close()

    def close(self):
        self.hold.clear()
        self.stop.set()
        self._thread.join(timeout=5)


def detect_args(source: str, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return ["detect", source, "--weights", str(checkpoint), "--out", str(out), "--sampling", "causal", "--n", "3",
            "--score-thr", "0.05", "--no-progress", *extra]


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_live_inputs_are_recognised():
    for spec in ("-", "/dev/video0", "rtsp://cam/stream", "RTMP://host/app", "http://host/x.m3u8", "udp://@:5000",
                 "tcp://127.0.0.1:9"):
        assert is_live_input(spec), spec
    for spec in ("clip.mp4", "/data/frames", "/dev/null", "file:clip.mp4", "C:/videos/a.mp4"):
        assert not is_live_input(spec), spec


def test_detect_follows_mpegts_over_loopback_tcp(cli, checkpoint, tmp_path, capsys):
    """Acceptance 2: PyAV writes MPEG-TS to tcp://127.0.0.1:PORT from a thread; one JSON line per frame sent and a
    playable annotated video."""
    server = MpegTsServer(frames=20)
    out = tmp_path / "out"
    try:
        code = cli(detect_args(server.url, checkpoint, out, "--timeout", "5", "--input-option", "tcp_nodelay=1"))
    finally:
        server.close()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = read_lines(out / "detections.jsonl")
    assert server.sent == 20
    assert [line["frame_index"] for line in lines] == list(range(20))
    assert {line["video"] for line in lines} == {server.url}
    assert decode_all(out / "annotated.mp4") == (20, 64, 48)
    assert "20 frames" in captured.out and "sampling causal, memory recent" in captured.out


def test_detect_reads_a_video_piped_on_stdin(checkpoint, tmp_path):
    video = write_video(tmp_path / "clip.mkv", 15, 64, 48)
    out = tmp_path / "out"
    with open(video, "rb") as stdin:
        done = subprocess.run([sys.executable, "-m", "dsfnet", *detect_args("-", checkpoint, out, "--memory",
                                                                            "spread")],
                              stdin=stdin, capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert done.returncode == 0, done.stderr
    lines = read_lines(out / "detections.jsonl")
    assert [line["frame_index"] for line in lines] == list(range(15))
    assert {line["video"] for line in lines} == {"stdin"}
    assert decode_all(out / "annotated.mp4") == (15, 64, 48)


def test_offline_sampling_on_a_live_stream_is_an_error(cli, checkpoint, tmp_path, capsys):
    server = MpegTsServer(frames=3)
    try:
        args = detect_args(server.url, checkpoint, tmp_path / "out")
        code = cli(args[:args.index("--sampling")] + ["--sampling", "shuffled"] + args[args.index("--n"):])
    finally:
        server.close()
    assert code == 2
    assert "live stream: it needs --sampling causal" in capsys.readouterr().err


def test_a_stalled_stream_ends_with_a_message_and_keeps_what_was_written(cli, checkpoint, tmp_path, capsys):
    server = MpegTsServer(frames=8, hold=True)  # sends 8 frames, then nothing, connection open
    out = tmp_path / "out"
    started = time.monotonic()
    try:
        code = cli(detect_args(server.url, checkpoint, out, "--timeout", "1"))
    finally:
        server.close()
    captured = capsys.readouterr()
    assert code == 2
    assert f"{server.url}: no frame for 1 s, the stream stalled or was dropped" in captured.err
    assert time.monotonic() - started < 30
    lines = read_lines(out / "detections.jsonl")
    assert [line["frame_index"] for line in lines] == list(range(8))
    assert decode_all(out / "annotated.mp4") == (8, 64, 48)
    assert "8 frames" in captured.out


def test_ctrl_c_closes_the_live_outputs_cleanly(checkpoint, tmp_path):
    """A real SIGINT to a running ``dsfnet detect`` on an endless stream: while it runs the outputs can be followed
    (JSON lines complete, the video decodes); after Ctrl-C both are closed and hold the same frames."""
    server = MpegTsServer(frames=None, pace=0.04)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "dsfnet", *detect_args(server.url, checkpoint, out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        jsonl = out / "detections.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (jsonl.exists() and len(jsonl.read_text().splitlines()) >= 6):
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        followed = read_lines(jsonl)  # every line written so far is complete
        assert len(followed) >= 6
        assert decode_all(out / "annotated.mp4")[0] >= 1  # playable while it grows
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        server.close()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    lines = read_lines(out / "detections.jsonl")
    assert [line["frame_index"] for line in lines] == list(range(len(lines)))
    assert len(lines) >= len(followed)
    assert decode_all(out / "annotated.mp4") == (len(lines), 64, 48)
    assert f"{len(lines)} frames" in stdout


def test_live_source_is_read_once_and_has_no_length():
    server = MpegTsServer(frames=5)
    try:
        source = open_source(server.url, timeout=5)
        assert isinstance(source, LiveSource) and source.live and source.count() is None
        frames = list(source.frames())
        with pytest.raises(RuntimeError, match="read only once"):
            source.frames()
    finally:
        server.close()
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8


def test_whole_video_post_processing_on_a_live_stream_is_an_error(cli, checkpoint, tmp_path, capsys):
    code = cli(detect_args("tcp://127.0.0.1:9", checkpoint, tmp_path / "out", "--post", "seqnms"))
    assert code == 2
    assert "tcp://127.0.0.1:9 is a live stream: --post needs the whole video" in capsys.readouterr().err


def test_malformed_input_option_is_a_one_line_error(cli, checkpoint, tmp_path, capsys):
    code = cli(detect_args("tcp://127.0.0.1:9", checkpoint, tmp_path / "out", "--input-option", "rtsp_transport"))
    assert code == 2
    assert "--input-option 'rtsp_transport': expected KEY=VALUE" in capsys.readouterr().err


def test_unreachable_stream_and_missing_camera_are_one_line_errors(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(ValueError, match=f"tcp://127.0.0.1:{port}: cannot open the stream"):
        open_source(f"tcp://127.0.0.1:{port}", timeout=2)
    with pytest.raises(FileNotFoundError, match="camera not found: /dev/video97"):
        open_source("/dev/video97")
    with pytest.raises(ValueError, match="timeout"):
        LiveSource("-", timeout=0)
