#!/usr/bin/env python3
"""Synthesises "Daybreak", the demo's background music, into daybreak.m4a.

An original, gentle instrumental in D major at 80 bpm: 16 bars (48 s) of
I-V-vi-IV (D A Bm G) three times, then D A G D so that it ends on the tonic
and loops back to its first bar. A soft detuned pad, a bass, a plucked
arpeggio, a bell-like melody from bar 5, and light percussion (soft kick and
shaker) in bars 5-15. Everything is computed with numpy (additive synthesis,
FFT convolution reverb); nothing is sampled from elsewhere. The output is
dedicated to the public domain under CC0 1.0
(https://creativecommons.org/publicdomain/zero/1.0/), like this script.

Deterministic (seeded noise). The WAV goes to a temporary folder; the ffmpeg
CLI measures its loudness (EBU R128, loudnorm filter) so the script can set
it to about -16 LUFS with the true peak under -1 dBFS, then encodes
AAC-LC 128 kb/s, 48 kHz stereo, with +faststart.

Tested with:
    Python 3.11.7, numpy==2.4.6,
    ffmpeg 5.1.9 (Debian 12 package `ffmpeg`, native `aac` encoder).

Regenerate (from the repository root):
    python3 -m venv /tmp/assetvenv
    /tmp/assetvenv/bin/pip install numpy==2.4.6
    /tmp/assetvenv/bin/python assets/music/generate.py
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "daybreak.m4a")
SR = 48000
BPM = 80
BEAT = 60 / BPM
BAR = 4 * BEAT
BARS = 16
DURATION = BARS * BAR  # 48 s
TARGET_LUFS = -16.0
CEILING_DBTP = -1.5  # leave room for the AAC encoder's overshoot
rng = np.random.default_rng(20260214)


def midi_hz(n):
    return 440.0 * 2 ** ((n - 69) / 12)


# chord roots and triads as MIDI notes (D4 = 62)
CHORDS = {
    "D": [50, 62, 66, 69],   # D3 | D4 F#4 A4
    "A": [45, 61, 64, 69],   # A2 | C#4 E4 A4
    "Bm": [47, 62, 66, 71],  # B2 | D4 F#4 B4
    "G": [43, 62, 67, 71],   # G2 | D4 G4 B4
}
PROGRESSION = ["D", "A", "Bm", "G"] * 3 + ["D", "A", "G", "D"]

# melody from bar 5: (bar, beat, length in beats, MIDI note)
MELODY = [
    # bars 5-8
    (4, 0, 1.5, 74), (4, 1.5, 0.5, 76), (4, 2, 2, 78),
    (5, 0, 1.5, 76), (5, 1.5, 0.5, 73), (5, 2, 2, 69),
    (6, 0, 1, 71), (6, 1, 1, 74), (6, 2, 2, 78),
    (7, 0, 1.5, 79), (7, 1.5, 0.5, 78), (7, 2, 2, 74),
    # bars 9-12
    (8, 0, 1, 78), (8, 1, 1, 81), (8, 2, 2, 78),
    (9, 0, 1, 76), (9, 1, 1, 73), (9, 2, 2, 76),
    (10, 0, 1.5, 74), (10, 1.5, 0.5, 71), (10, 2, 2, 78),
    (11, 0, 2, 79), (11, 2, 1, 76), (11, 3, 1, 74),
    # bars 13-16, settling on D
    (12, 0, 1.5, 78), (12, 1.5, 0.5, 76), (12, 2, 2, 74),
    (13, 0, 1, 73), (13, 1, 1, 76), (13, 2, 2, 81),
    (14, 0, 1.5, 79), (14, 1.5, 0.5, 78), (14, 2, 2, 76),
    (15, 0, 4, 74),
]

N = int(DURATION * SR)


def env_adsr(n, a, d, s, r, total):
    """Attack/decay/sustain/release envelope over `total` samples, note length n."""
    t = np.arange(total) / SR
    nd = n / SR
    e = np.where(t < a, t / a, np.where(t < a + d, 1 - (1 - s) * (t - a) / d, s))
    rel = np.clip(1 - (t - nd) / r, 0, 1)
    return e * np.where(t > nd, rel, 1)


def add(buf, start_s, sig_l, sig_r):
    i = int(start_s * SR)
    j = min(N, i + len(sig_l))
    buf[0, i:j] += sig_l[: j - i]
    buf[1, i:j] += sig_r[: j - i]


def pad_note(freq, length_s):
    """Warm pad: detuned additive saw-ish tone, soft attack and long release."""
    total = int((length_s + 1.5) * SR)
    t = np.arange(total) / SR
    out = []
    for side, det in ((0, -0.06), (1, +0.06)):
        s = np.zeros(total)
        for cents in (-7 + det * 10, 0.0, 7 - det * 10):
            f = freq * 2 ** (cents / 1200)
            ph = rng.uniform(0, 2 * np.pi)
            for k in range(1, 7):
                s += np.sin(2 * np.pi * f * k * t + ph * k) / k ** 1.6
        out.append(s)
    e = env_adsr(int(length_s * SR), 0.8, 0.6, 0.8, 1.4, total)
    trem = 1 + 0.08 * np.sin(2 * np.pi * 0.23 * t)
    return out[0] * e * trem, out[1] * e * trem


def pluck(freq, length_s=1.6):
    """Harp-like pluck: harmonics that die away faster the higher they are."""
    total = int(length_s * SR)
    t = np.arange(total) / SR
    s = np.zeros(total)
    for k in range(1, 9):
        s += np.sin(2 * np.pi * freq * k * t) * np.exp(-t * (2.2 + 1.6 * k)) / k ** 1.3
    attack = np.clip(t / 0.004, 0, 1)
    return s * attack


def bell(freq, length_s):
    """Soft bell/flute lead: sine with a little inharmonic shimmer and vibrato."""
    total = int((length_s + 1.2) * SR)
    t = np.arange(total) / SR
    vib = 1 + 0.004 * np.sin(2 * np.pi * 5.2 * t) * np.clip((t - 0.25) / 0.3, 0, 1)
    ph = 2 * np.pi * freq * np.cumsum(vib) / SR
    s = np.sin(ph) + 0.25 * np.sin(2 * ph) * np.exp(-t * 3) + 0.12 * np.sin(3.01 * ph) * np.exp(-t * 5)
    e = env_adsr(int(length_s * SR), 0.03, 0.4, 0.65, 0.9, total)
    return s * e


def bass(freq, length_s):
    total = int((length_s + 0.4) * SR)
    t = np.arange(total) / SR
    s = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t) + 0.1 * np.sin(6 * np.pi * freq * t)
    return s * env_adsr(int(length_s * SR), 0.02, 0.3, 0.7, 0.3, total)


def kick():
    total = int(0.45 * SR)
    t = np.arange(total) / SR
    f = 48 + 70 * np.exp(-t * 30)
    return np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t * 9) * np.clip(t / 0.002, 0, 1)


def shaker(accent):
    total = int(0.12 * SR)
    t = np.arange(total) / SR
    noise = rng.standard_normal(total)
    hp = noise - np.concatenate(([0], noise[:-1]))  # crude high-pass
    return hp * np.exp(-t * 45) * np.clip(t / 0.006, 0, 1) * accent


def reverb(x, seconds=2.4, wet=0.22):
    """Convolution with decaying stereo noise: a soft, wide room."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = np.empty_like(x)
    size = 1 << int(np.ceil(np.log2(x.shape[1] + n)))
    for ch in range(2):
        ir = rng.standard_normal(n) * np.exp(-t * 6.9 / seconds)
        ir[: int(0.012 * SR)] = 0  # pre-delay
        # darken the tail: moving average
        k = 6
        ir = np.convolve(ir, np.ones(k) / k, mode="same")
        ir /= np.sqrt(np.sum(ir ** 2))
        y = np.fft.irfft(np.fft.rfft(x[ch], size) * np.fft.rfft(ir, size), size)[: x.shape[1]]
        out[ch] = x[ch] + wet * y
    return out


def compose():
    pad = np.zeros((2, N))
    low = np.zeros((2, N))
    arp = np.zeros((2, N))
    lead = np.zeros((2, N))
    drums = np.zeros((2, N))

    for bar, name in enumerate(PROGRESSION):
        root, *triad = CHORDS[name]
        t0 = bar * BAR
        last = bar == BARS - 1
        # pad: the triad, held for the bar (the last chord rings a bit longer)
        for note in triad:
            l, r = pad_note(midi_hz(note), BAR * (0.95 if last else 1.0))
            add(pad, t0, l, r)
        # bass: root on beats 1 and 3 (only a held root in the last bar)
        if last:
            add(low, t0, *(2 * [bass(midi_hz(root), BAR * 0.9)]))
        else:
            for beat in (0, 2):
                b = bass(midi_hz(root), BEAT * 1.8)
                add(low, t0 + beat * BEAT, b, b)
        # arpeggio: eighth notes up and down the chord over two octaves
        tones = sorted(triad) + [n + 12 for n in sorted(triad)]
        pattern = [0, 1, 2, 3, 4, 3, 2, 1] if not last else [0, 1, 2, 3, 4, 5]
        for i, idx in enumerate(pattern):
            p = pluck(midi_hz(tones[idx]))
            pan = 0.5 + 0.35 * np.sin(i * np.pi / 4)
            vel = 0.8 if i % 2 else 1.0
            add(arp, t0 + i * BEAT / 2, p * vel * (1 - pan), p * vel * pan)
        # percussion in bars 5-15
        if 4 <= bar < BARS - 1:
            for beat in range(4):
                if beat in (0, 2):
                    k = kick()
                    add(drums, t0 + beat * BEAT, k, k)
                for half in (0, 1):
                    sh = shaker(0.6 if half else 0.35)
                    add(drums, t0 + (beat + half / 2) * BEAT, sh * 0.8, sh)
    for bar, beat, length, note in MELODY:
        b = bell(midi_hz(note), length * BEAT * 0.95)
        add(lead, bar * BAR + beat * BEAT, b * 0.9, b)

    # the intro (bars 1-4) is pad, bass and arpeggio only; the melody enters at 5
    mix = 0.13 * pad + 0.30 * low + 0.20 * arp + 0.22 * lead + 0.20 * drums
    mix = reverb(mix)
    # short fades so the loop point does not click; the end is the tonic chord
    t = np.arange(N) / SR
    fade = np.clip(t / 0.05, 0, 1) * np.clip((DURATION - t) / 1.2, 0, 1) ** 0.5
    return mix * fade


def write_wav(path, x):
    pcm = (np.clip(x, -1, 1) * 32767).round().astype("<i2").T.copy()
    with wave.open(path, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def measure(ffmpeg, path):
    """Integrated loudness (LUFS) and true peak (dBTP) by ffmpeg's loudnorm."""
    res = subprocess.run([ffmpeg, "-hide_banner", "-nostats", "-i", path, "-af",
                          "loudnorm=print_format=json", "-f", "null", "-"],
                         capture_output=True, text=True, check=True)
    js = json.loads(re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", res.stderr).group(0))
    return float(js["input_i"]), float(js["input_tp"])


def main():
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("the ffmpeg CLI is needed")
    x = compose()
    x /= np.max(np.abs(x))  # headroom for measuring
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        write_wav(raw, x * 0.5)
        lufs, tp = measure(ffmpeg, raw)
        gain_db = TARGET_LUFS - lufs
        if tp + gain_db > CEILING_DBTP:
            # a gentle soft-knee limiter on the rare peaks, then measure again
            peak = 10 ** ((CEILING_DBTP - gain_db) / 20)  # allowed peak at the raw level
            y = x * 0.5
            over = np.abs(y) > 0.7 * peak
            knee = 0.7 * peak
            y = np.where(over, np.sign(y) * (knee + (peak - knee) * np.tanh((np.abs(y) - knee) / (peak - knee))), y)
            write_wav(raw, y)
            lufs, tp = measure(ffmpeg, raw)
            gain_db = TARGET_LUFS - lufs
            x = y * 2
        final = x * 0.5 * 10 ** (gain_db / 20)
        wav = os.path.join(tmp, "daybreak.wav")
        write_wav(wav, final)
        lufs, tp = measure(ffmpeg, wav)
        print(f"wav: {lufs:.1f} LUFS, true peak {tp:.1f} dBTP, sample peak "
              f"{20 * np.log10(np.max(np.abs(final))):.1f} dBFS")
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", wav,
                        "-c:a", "aac", "-profile:a", "aac_low", "-b:a", "128k", "-ar", "48000",
                        "-ac", "2", "-map_metadata", "-1", "-fflags", "+bitexact",
                        "-flags:a", "+bitexact", "-movflags", "+faststart", OUT], check=True)
    lufs, tp = measure(ffmpeg, OUT)
    print(f"{os.path.basename(OUT)}: {os.path.getsize(OUT) // 1024} KiB, {lufs:.1f} LUFS, "
          f"true peak {tp:.1f} dBTP")


if __name__ == "__main__":
    main()
