"""Reading audio: decoding, resampling, mono mixing, fixed lengths, class folders and tables of
real FSDD recordings (8 kHz mono 16-bit) through graft.data.load_data, with broken files
skipped and named."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile
import torch
from torch.utils.data import DataLoader

from graft.backbones.audio import AudioPreprocessing, SpectrogramSettings
from graft.data import load_data
from graft.data.audio import (
    AUDIO_EXTENSIONS,
    AudioDataset,
    UnreadableAudio,
    audio_duration,
    collate_audio,
    decode_audio,
    default_clip_seconds,
    fit_length,
    is_audio_file,
)
from graft.errors import ConfigError, DataError
from tests.conftest import SHARED

FSDD = SHARED / "fsdd"


@pytest.fixture(scope="module")
def fsdd():
    if not (FSDD / "0").is_dir():
        pytest.skip(f"shared dataset {FSDD} is not available")
    return FSDD


def clip(fsdd, name: str):
    return fsdd / name.split("_")[0] / f"{name}.wav"


def test_decode_at_the_file_rate_and_resampled(fsdd):
    path = clip(fsdd, "3_george_0")
    frames = soundfile.info(str(path)).frames
    native = decode_audio(path, 8000)
    expected, _ = soundfile.read(str(path), dtype="float32")
    assert native.dtype == torch.float32 and native.shape == (frames,)
    assert torch.equal(native, torch.from_numpy(expected))
    doubled = decode_audio(path, 16000)
    assert abs(doubled.shape[0] - 2 * frames) <= 1
    halved = decode_audio(path, 4000)
    assert abs(halved.shape[0] - frames / 2) <= 1
    assert audio_duration(path) == pytest.approx(frames / 8000)


def test_stereo_is_mixed_to_mono_and_other_formats_decode(tmp_path):
    rate = 22050
    t = np.arange(rate // 2) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, -0.5 * left], axis=1).astype(np.float32)
    soundfile.write(tmp_path / "stereo.wav", stereo, rate, subtype="FLOAT")
    mono = decode_audio(tmp_path / "stereo.wav", rate)
    np.testing.assert_allclose(mono.numpy(), 0.25 * left, atol=1e-7)
    resampled = decode_audio(tmp_path / "stereo.wav", 16000)
    assert abs(resampled.shape[0] - len(t) * 16000 / rate) <= 1
    for suffix in (".flac", ".ogg", ".mp3"):
        if suffix not in AUDIO_EXTENSIONS:
            continue
        soundfile.write(tmp_path / f"tone{suffix}", stereo, rate)
        decoded = decode_audio(tmp_path / f"tone{suffix}", rate)
        assert decoded.dim() == 1 and abs(decoded.shape[0] - len(t)) <= 1152  # an MP3 frame
        assert is_audio_file(tmp_path / f"TONE{suffix.upper()}")


def test_mp3_is_listed_exactly_when_libsndfile_reads_it():
    assert (".mp3" in AUDIO_EXTENSIONS) == ("MP3" in soundfile.available_formats())
    assert {".wav", ".flac", ".ogg"} <= AUDIO_EXTENSIONS
    assert not is_audio_file("notes.txt")


def test_unreadable_files_say_why(tmp_path, fsdd):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all")
    (tmp_path / "truncated.wav").write_bytes(clip(fsdd, "1_theo_3").read_bytes()[:20])
    soundfile.write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 8000)
    soundfile.write(
        tmp_path / "nan.wav", np.full(100, np.nan, dtype=np.float32), 8000, subtype="FLOAT"
    )
    reasons = {
        "empty.wav": "the file is empty",
        "text.wav": "not a readable audio file",
        "truncated.wav": "not a readable audio file",
        "silent.wav": "holds no audio samples",
        "nan.wav": "NaN or infinite",
        "missing.wav": "not a readable audio file",
    }
    for name, reason in reasons.items():
        with pytest.raises(UnreadableAudio, match=reason):
            decode_audio(tmp_path / name, 16000)


def test_fit_length_crops_and_pads():
    wave = torch.arange(10, dtype=torch.float32)
    assert torch.equal(fit_length(wave, 4, train=False), torch.tensor([3.0, 4, 5, 6]))
    padded = fit_length(wave, 13, train=False)
    assert torch.equal(padded, torch.cat([wave, torch.zeros(3)]))
    assert fit_length(wave, 10, train=True) is wave
    starts = set()
    for seed in range(40):
        crop = fit_length(wave, 4, train=True, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(crop, torch.arange(crop[0], crop[0] + 4))
        starts.add(int(crop[0]))
    assert starts == set(range(7))  # every offset of a 4-sample window in 10 samples
    same = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(fit_length(wave, 4, True, same[0]), fit_length(wave, 4, True, same[1]))
    assert fit_length(torch.zeros(2, 10), 4, train=False).shape == (2, 4)


def test_default_clip_seconds_on_fsdd(fsdd):
    durations = [audio_duration(p) for p in sorted(fsdd.glob("*/*.wav"))]
    assert len(durations) == 3000
    assert np.quantile(durations, 0.95) == pytest.approx(0.6624, abs=1e-3)
    assert default_clip_seconds(durations) == 0.7
    assert default_clip_seconds([0.5] * 39 + [30.0]) == 0.5  # the outlier is cropped
    assert default_clip_seconds([0.01, 0.02]) == 0.1
    assert default_clip_seconds([60.0, 120.0]) == 10.0
    assert default_clip_seconds([1.0]) == 1.0
    with pytest.raises(DataError):
        default_clip_seconds([])


def write_folder(fsdd, root, digits=("0", "1", "2"), per_class=3):
    for digit in digits:
        (root / digit).mkdir(parents=True)
        for file in sorted((fsdd / digit).glob("*.wav"))[:per_class]:
            shutil.copy(file, root / digit / file.name)
    return root


def test_class_folders_skip_and_name_broken_files(tmp_path, fsdd, caplog):
    root = write_folder(fsdd, tmp_path / "digits")
    (root / "0" / "empty.wav").write_bytes(b"")
    (root / "1" / "fake.flac").write_text("hello")
    (root / "1" / "notes.txt").write_text("recorded on a Tuesday")
    (root / "2" / "nested").mkdir()
    shutil.copy(clip(fsdd, "2_lucas_9"), root / "2" / "nested" / "2_lucas_9.wav")
    (root / "readme").mkdir()
    (root / "readme" / "about.txt").write_text("no audio here")
    (root / "2" / "cover.jpg").write_bytes(b"a stray picture among the clips")
    data = load_data(root)
    assert data.classes == ["0", "1", "2"]
    assert data.modality == "audio" and data.task == "multiclass"
    assert len(data) == 10 and data.class_counts() == {"0": 3, "1": 3, "2": 4}
    assert all(path.endswith(".wav") for path in data.items)
    skipped = {path.split("/")[-1]: why for path, why in data.skipped}
    assert set(skipped) == {"empty.wav", "fake.flac"}  # cover.jpg and notes.txt are no inputs
    assert skipped["empty.wav"] == "the file is empty"
    assert skipped["fake.flac"].startswith("not a readable audio file")
    assert "skipped" in caplog.text and "empty.wav" in caplog.text
    assert "class folder(s) with no usable file, left out: readme" in caplog.text


def test_class_folders_without_audio_are_refused(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.wav").write_bytes(b"")
    with pytest.raises(DataError, match="no usable examples"):
        load_data(tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        load_data(tmp_path / "missing")


def test_a_table_of_audio_paths(tmp_path, fsdd):
    (tmp_path / "clips").mkdir()
    names = ["0_george_5", "0_jackson_5", "7_theo_5", "7_nicolas_5"]
    for name in names:
        shutil.copy(clip(fsdd, name), tmp_path / "clips" / f"{name}.wav")
    (tmp_path / "clips" / "broken.wav").write_text("oops")
    rows = [{"file": f"clips/{n}.wav", "label": n[0]} for n in names] + [
        {"file": "clips/broken.wav", "label": "7"},
        {"file": "clips/absent.wav", "label": "0"},
        {"file": "../outside.wav", "label": "0"},
        {"file": "clips/0_george_5.wav", "label": ""},
    ]
    with open(tmp_path / "clips.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "label"])
        writer.writeheader()
        writer.writerows(rows)
    data = load_data(tmp_path / "clips.csv")
    assert data.modality == "audio"
    assert data.classes == ["0", "7"] and data.labels.tolist() == [0, 0, 1, 1]
    assert data.items[2] == str((tmp_path / "clips" / "7_theo_5.wav").resolve())
    skipped = dict(data.skipped)
    table = tmp_path / "clips.csv"
    assert skipped[f"{table}, row 7"] == "audio 'clips/absent.wav' does not exist"
    assert "outside" in skipped[f"{table}, row 8"]
    assert skipped[f"{table}, row 9"] == "missing label in column 'label'"
    broken = str((tmp_path / "clips" / "broken.wav").resolve())
    assert skipped[broken].startswith("not a readable audio file")
    assert load_data(table, audio_column="file").items == data.items
    with pytest.raises(DataError, match="no column 'sound' \\(option --audio-column\\)"):
        load_data(table, audio_column="sound")
    with pytest.raises(DataError, match="--audio-column alone"):
        load_data(table, audio_column="file", image_column="file")


def test_dataset_and_collate_give_fixed_length_batches(tmp_path, fsdd):
    files = [clip(fsdd, n) for n in ("4_yweweler_10", "9_lucas_2", "5_george_44")]
    lengths = [soundfile.info(str(f)).frames for f in files]
    preprocessing = AudioPreprocessing(sample_rate=16000, clip_seconds=0.3)
    labels = np.array([4, 9, 5])
    dataset = AudioDataset([str(f) for f in files], labels, preprocessing)
    loader = DataLoader(dataset, batch_size=3, collate_fn=collate_audio)
    waves, targets = next(iter(loader))
    assert waves.shape == (3, 4800) and waves.dtype == torch.float32
    assert targets.tolist() == [4, 9, 5] and targets.dtype == torch.int64
    first = decode_audio(files[0], 16000)
    assert torch.equal(waves[0], fit_length(first, 4800, train=False))
    assert torch.equal(next(iter(loader))[0], waves)  # evaluation crops are fixed
    longest = int(np.argmax(lengths))
    train = AudioDataset([str(files[longest])], labels[:1], preprocessing, train=True)
    torch.manual_seed(0)
    crops = {tuple(train[0][0][:5].tolist()) for _ in range(6)}
    assert len(crops) > 1  # random crops when training
    unlabelled = AudioDataset([str(files[0])], None, preprocessing)
    assert unlabelled[0][1] == -1
    gone = tmp_path / "gone.wav"
    shutil.copy(files[0], gone)
    later = AudioDataset([str(gone)], None, preprocessing)
    gone.unlink()
    with pytest.raises(DataError, match="gone.wav"):
        later[0]
    with pytest.raises(ConfigError):
        AudioDataset([], None, object())  # type: ignore[arg-type]


def test_preprocessing_round_trips_through_json():
    record = AudioPreprocessing(
        sample_rate=8000,
        clip_seconds=0.7,
        spectrogram=SpectrogramSettings(n_mels=40, f_max=3800.0, image_size=(128, 96)),
    )
    saved = json.loads(json.dumps(record.to_dict()))
    assert saved["modality"] == "audio" and saved["spectrogram"]["image_size"] == [128, 96]
    assert AudioPreprocessing.from_dict(saved) == record
    assert record.samples == 5600
    hf = AudioPreprocessing(feature_extractor="/models/w2v")
    assert AudioPreprocessing.from_dict(json.loads(json.dumps(hf.to_dict()))) == hf
    assert record.replace(clip_seconds=1.0, n_mels=64).spectrogram.n_mels == 64
    with pytest.raises(ConfigError, match="unknown audio preprocessing option"):
        record.replace(n_mel=64)
    with pytest.raises(ConfigError, match="feature extractor"):
        hf.replace(n_mels=64)
    with pytest.raises(ConfigError, match="clip_seconds"):
        AudioPreprocessing(clip_seconds=0)
    with pytest.raises(ConfigError, match="normalization"):
        SpectrogramSettings(normalization="global")  # type: ignore[arg-type]


def test_a_dataframe_of_audio_paths_with_lists_of_labels(fsdd):
    pandas = pytest.importorskip("pandas")

    frame = pandas.DataFrame(
        {
            "clip": [str(clip(fsdd, n)) for n in ("1_theo_5", "2_theo_5", "3_theo_5")],
            "tags": [["odd", "small"], ["even", "small"], ["odd"]],
        }
    )
    data = load_data(frame, label_column="tags")
    assert data.modality == "audio"
    assert data.task == "multilabel" and data.classes == ["even", "odd", "small"]
    assert data.labels.tolist() == [[0, 1, 1], [1, 0, 1], [0, 1, 0]]
    assert data.items[0] == str(clip(fsdd, "1_theo_5").resolve())


def test_audio_inputs_to_predict(tmp_path, fsdd):
    from graft.data import load_inputs

    root = write_folder(fsdd, tmp_path / "clips", digits=("4", "8"), per_class=2)
    (root / "4" / "notes.txt").write_text("not an input")
    one = clip(fsdd, "5_jackson_3")
    first = sorted(p.name for p in (root / "4").glob("*.wav"))[0]
    table = tmp_path / "new.csv"
    table.write_text(f"speaker,audio\ntheo,clips/4/{first}\n")
    items = load_inputs([str(one), str(root), str(table)], "audio")
    assert items[0] == str(one.resolve())
    assert len(items) == 1 + 4 + 1 and all(item.endswith(".wav") for item in items)
    assert items[-1] == items[1]  # the table's row names the folder's first clip
    with pytest.raises(DataError, match="no such audio file or folder"):
        load_inputs([str(tmp_path / "absent.wav")], "audio")


def test_class_folders_of_images_and_a_few_clips_stay_images(tmp_path, fsdd):
    from PIL import Image

    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / name / f"{i}.png")
    shutil.copy(clip(fsdd, "1_theo_5"), tmp_path / "cats" / "purr.wav")
    data = load_data(tmp_path)
    assert data.modality == "image" and len(data) == 6  # the clip is no image: not an input


def test_input_dataset_reads_audio_and_mixup_mixes_waveforms(fsdd):
    from graft.data.transforms import Collate, InputDataset, mixup_for

    files = [str(clip(fsdd, n)) for n in ("6_theo_7", "6_george_7")]
    preprocessing = AudioPreprocessing(clip_seconds=0.5, spectrogram=SpectrogramSettings())
    dataset = InputDataset(files, np.array([6, 6]), preprocessing)
    waves, labels = Collate(preprocessing)([dataset[0], dataset[1]])
    assert waves.shape == (2, 8000) and labels.tolist() == [6, 6]
    expected = fit_length(decode_audio(files[0], 16000), 8000, train=False)
    assert torch.equal(waves[0], expected)
    with pytest.raises(ValueError, match="no cached augmented views"):
        InputDataset(files, None, preprocessing, view=1)
    assert mixup_for("light", 10, 0.0, "audio") is None
    assert mixup_for("strong", 10, 0.0, "text") is None
    mixup = mixup_for("strong", 10, 0.0, "audio")
    assert mixup.cutmix_alpha == 0.0 and mixup.mixup_alpha > 0  # no cutmix for waveforms
    np.random.seed(0)
    mixed, soft = mixup(waves.clone(), torch.tensor([6, 1]))
    lam = float(soft[0, 6])
    torch.testing.assert_close(mixed[0], lam * waves[0] + (1 - lam) * waves[1])
    assert soft.shape == (2, 10) and soft[0, 1] == pytest.approx(1 - lam)
