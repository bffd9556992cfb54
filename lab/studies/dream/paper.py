"""The dream study's part of the paper document: Figure 4, each dream seen, heard and judged by the other models."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import soundfile as sf
from omegaconf import DictConfig

from lab.stats import plots
from lab.stats.document import Audio, Figure, NamedTable, Section, Text
from lab.stats.tables import Table, run_label
from lab.studies.dream import report as dream_report

RUN = ("python -m lab experiment=dream model=fcn,musicnn,crnn genre=disco dream.steps=300 dataset=gtzan "
       "dataset.root=../shared/music/gtzan_mini paths.weights=../shared/weights sweep_id={sweep} -m")


def ogg(wav: bytes) -> bytes:
    """WAV bytes as Ogg Vorbis (about a tenth of the size), so the page stays small enough to share.

    The same WAV always gives the same bytes, so a report re-run on an unchanged store is unchanged.
    """
    y, sr = sf.read(io.BytesIO(wav), dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="OGG", subtype="VORBIS")
    return fixed_serial(buf.getvalue())


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def fixed_serial(data: bytes, serial: int = 1) -> bytes:
    """An Ogg stream with every page's stream serial number set to ``serial`` and its checksum redone.

    libsndfile draws the serial at random for each file (the Ogg spec allows any value for a
    single-stream file), which is the only thing that differs between two encodings of the same audio.
    Page layout (RFC 3533): serial at bytes 14-17, CRC-32 (polynomial 0x04C11DB7, over the page with
    the CRC field zeroed) at 22-25, segment count at 26, then the segment table and the body.
    """
    out = bytearray(data)
    pos = 0
    while pos + 27 <= len(out):
        if out[pos:pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        n_seg = out[pos + 26]
        end = pos + 27 + n_seg + sum(out[pos + 27:pos + 27 + n_seg])
        out[pos + 14:pos + 18] = serial.to_bytes(4, "little")
        out[pos + 22:pos + 26] = bytes(4)
        crc = 0
        for b in out[pos:end]:
            crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[(crc >> 24) ^ b]
        out[pos + 22:pos + 26] = crc.to_bytes(4, "little")
        pos = end
    return bytes(out)


def figure4(reader, cfg: DictConfig) -> Section:
    """Figure 4: each dream's spectrogram, a player for its audio, its loss curve and the other models' verdict."""
    s = Section("figure-4", "Figure 4: deep-dreaming a genre", experiment="dream",
                paper="The study's Figure 4: a waveform optimised until the frozen tagger embeds it at a genre's mean "
                      "song embedding. The study found the result unintelligible. Each dream is judged again by the "
                      "other taggers (transfer): a target rank of 1 means that model also hears the target genre nearest.")
    jobs = reader.runs("dream")
    if not jobs:
        return s.not_run(RUN, reader.sweep)
    s.runs = list(jobs)
    for job in jobs:
        for run in reader.children(job):
            s.runs.append(run)
            t, m = run["tags"], run["metrics"]
            what = f"{t.get('genre')} dreamed by {run_label(t)} ({int(m.get('total_steps', 0))} steps, seed {t.get('noise_seed')})"
            s.add(Text(f"**{what}**: nearest genre to the dream in its own model's space: {t.get('nearest_genre')} "
                       f"(target rank {int(m.get('target_rank', 0))}); after the energy gate: {t.get('gated_nearest_genre')}."))
            png = reader.bytes(run, "dream_raw.png")
            if png is not None:
                s.add(Figure(png, f"{what}: spectrogram"))
            hist = reader.text(run, "loss_history.csv")
            if hist:
                h = pd.read_csv(io.StringIO(hist))
                if len(h):
                    # the MSE term is drawn apart only when a regulariser makes the loss differ from it
                    mse = h.mse.to_numpy() if "mse" in h and not np.allclose(h.mse, h.loss) else None
                    fig = plots.loss_curve(h.step.to_numpy(), h.loss.to_numpy(), mse=mse, title=f"{what}: loss")
                    s.add(Figure(plots.figure_bytes(fig, dpi=100, tight=False), f"{what}: loss over steps"))
            wav = reader.bytes(run, "audio/dream_gated.wav") or reader.bytes(run, "audio/dream_raw.wav")
            if wav is not None:
                s.add(Audio(ogg(wav), "audio/ogg", f"{what} (energy-gated, peak-normalised)"))
            transfer = reader.text(run, "transfer.csv")
            if transfer:
                tr = pd.read_csv(io.StringIO(transfer))
                cols = [c for c in ("judged_by", "nearest_genre", "target_rank", "dist_target", "dist_nearest") if c in tr]
                key = f"transfer_{t.get('model')}_{t.get('genre')}_{t.get('noise_seed')}"
                s.add(NamedTable(key, Table(tr[cols].replace({np.nan: "–"}), heading=f"{what}: verdict of each model")))
    transfer_summary(s, reader, cfg, jobs)
    return s


def transfer_summary(s: Section, reader, cfg: DictConfig, jobs: list[dict]) -> None:
    """The sweep's transfer matrices and permutation tests, when its dreams were judged (``transfer.csv``)."""
    df = dream_report.transfer_frame(jobs, uri=reader.uri)
    if df.empty or not (df.kind == "dream").any():
        return
    rep = dream_report.frame_report(df, cfg=cfg, sweep=reader.sweep)
    s.add(Text("**All dreams of the sweep, judged.** Each row of a matrix is a genre dreamed, each column the genre a "
               "judge calls the dream; p tests whether the calls depend on the target at all (targets permuted within "
               "seeds). With one genre or one seed there is nothing to permute and p is 1."))
    t = rep.tables["dream_transfer"]
    t.heading = t.heading or "Dreams judged as their target, by each tagger"
    s.add(NamedTable("dream_transfer", t))
    for name, data in rep.files.items():
        if name.endswith(".png"):
            s.add(Figure(data, name.removesuffix(".png").replace("_", " ")))
