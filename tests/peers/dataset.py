"""Deterministic synthetic DICOM test data (CT/MR-like) for the sample captures.

Everything here is fixed: UIDs, names, dates and pixel values, so two runs produce byte-identical
files.  The archive holds 5 patients, 6 studies, 9 series and 18 images:

=====  ==============  ========  ====================  =====================================
study  patient         date      description           series (modality x images, size)
=====  ==============  ========  ====================  =====================================
S1     DOE^JOHN        20240110  CT CHEST              1: CT x3 64x64, 2: CT x2 64x64
S2     DOE^JOHN        20240212  MR BRAIN              1: MR x3 64x64
S3     SMITH^JANE      20240315  CT MR ABDOMEN         1: CT x2 64x64, 2: MR x2 64x64
S4     MUSTERMANN^MAX  20240420  CT HEAD HIRES         1: CT x2 512x512
S5     TANAKA^HANAKO   20230905  MR KNEE               1: MR x2 64x64
S6     ROSSI^MARIO     20221111  CT SINUS              1: CT x2 64x64
=====  ==============  ========  ====================  =====================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

UID_ROOT = "1.2.826.0.1.3680043.8.498.4711"  # pydicom root + fixed project suffix
IMPLEMENTATION_UID = UID_ROOT + ".0.1"

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"

SOP_CLASS_OF = {"CT": CT_IMAGE_STORAGE, "MR": MR_IMAGE_STORAGE}


@dataclass
class SeriesSpec:
    number: int
    modality: str
    description: str
    images: int
    size: int = 64


@dataclass
class StudySpec:
    number: int
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    date: str
    time: str
    description: str
    accession: str
    series: list[SeriesSpec] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return f"{UID_ROOT}.1.{self.number}"

    @property
    def key(self) -> str:
        return f"S{self.number}"


STUDIES: list[StudySpec] = [
    StudySpec(
        1,
        "DOE^JOHN",
        "DSN001",
        "19600101",
        "M",
        "20240110",
        "081500",
        "CT CHEST",
        "ACC1001",
        [SeriesSpec(1, "CT", "AXIAL 5MM", 3), SeriesSpec(2, "CT", "CORONAL", 2)],
    ),
    StudySpec(
        2,
        "DOE^JOHN",
        "DSN001",
        "19600101",
        "M",
        "20240212",
        "140000",
        "MR BRAIN",
        "ACC1002",
        [SeriesSpec(1, "MR", "T2 AXIAL", 3)],
    ),
    StudySpec(
        3,
        "SMITH^JANE",
        "DSN002",
        "19751231",
        "F",
        "20240315",
        "093000",
        "CT MR ABDOMEN",
        "ACC2001",
        [SeriesSpec(1, "CT", "ABDOMEN CT", 2), SeriesSpec(2, "MR", "LIVER T1", 2)],
    ),
    StudySpec(
        4,
        "MUSTERMANN^MAX",
        "DSN003",
        "19820704",
        "M",
        "20240420",
        "110000",
        "CT HEAD HIRES",
        "ACC3001",
        [SeriesSpec(1, "CT", "HEAD 512", 2, size=512)],
    ),
    StudySpec(
        5,
        "TANAKA^HANAKO",
        "DSN004",
        "19900322",
        "F",
        "20230905",
        "161500",
        "MR KNEE",
        "ACC4001",
        [SeriesSpec(1, "MR", "PD SAG", 2)],
    ),
    StudySpec(
        6,
        "ROSSI^MARIO",
        "DSN005",
        "19551010",
        "M",
        "20221111",
        "074500",
        "CT SINUS",
        "ACC5001",
        [SeriesSpec(1, "CT", "SINUS AXIAL", 2)],
    ),
]


def study(key: str) -> StudySpec:
    """Return the study spec for 'S1'..'S6'."""
    for s in STUDIES:
        if s.key == key:
            return s
    raise KeyError(key)


def series_uid(st: StudySpec, se: SeriesSpec) -> str:
    return f"{st.uid}.{se.number}"


def sop_uid(st: StudySpec, se: SeriesSpec, n: int) -> str:
    return f"{st.uid}.{se.number}.{n}"


def _pixels(size: int, seed: int) -> bytes:
    """A deterministic 16-bit gradient pattern (little endian)."""
    out = bytearray(size * size * 2)
    for y in range(size):
        row = (y * 7 + seed * 131) & 0x0FFF
        for x in range(size):
            v = (row + x * 3) & 0x0FFF
            i = (y * size + x) * 2
            out[i] = v & 0xFF
            out[i + 1] = v >> 8
    return bytes(out)


_PIXEL_CACHE: dict[tuple[int, int], bytes] = {}


def make_image(st: StudySpec, se: SeriesSpec, n: int) -> Dataset:
    """Build one image instance (with file meta) for study/series/instance number n (1-based)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = SOP_CLASS_OF[se.modality]
    ds.SOPInstanceUID = sop_uid(st, se, n)
    ds.StudyDate = st.date
    ds.SeriesDate = st.date
    ds.ContentDate = st.date
    ds.StudyTime = st.time
    ds.SeriesTime = st.time
    ds.ContentTime = st.time
    ds.AccessionNumber = st.accession
    ds.Modality = se.modality
    ds.Manufacturer = "DIMSESNIFF SYNTHETIC"
    ds.InstitutionName = "SAMPLE HOSPITAL"
    ds.ReferringPhysicianName = "WELBY^MARCUS"
    ds.StudyDescription = st.description
    ds.SeriesDescription = se.description
    ds.PatientName = st.patient_name
    ds.PatientID = st.patient_id
    ds.PatientBirthDate = st.birth_date
    ds.PatientSex = st.sex
    ds.SliceThickness = "5.0"
    ds.StudyInstanceUID = st.uid
    ds.SeriesInstanceUID = series_uid(st, se)
    ds.StudyID = str(1000 + st.number)
    ds.SeriesNumber = se.number
    ds.InstanceNumber = n
    ds.ImagePositionPatient = ["0.0", "0.0", f"{5.0 * n:.1f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = f"{st.uid}.99"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = se.size
    ds.Columns = se.size
    ds.PixelSpacing = ["0.5", "0.5"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if se.modality == "CT":
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
    else:
        ds.EchoTime = "90"
        ds.RepetitionTime = "4000"
        ds.MagneticFieldStrength = "1.5"
    seed = st.number * 100 + se.number * 10 + n
    key = (se.size, seed)
    if key not in _PIXEL_CACHE:
        _PIXEL_CACHE[key] = _pixels(se.size, seed)
    ds.PixelData = _PIXEL_CACHE[key]

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = "DIMSESNIFF_SMP"
    ds.file_meta = meta
    return ds


def all_images(studies: list[str] | None = None) -> list[Dataset]:
    """All image datasets (optionally only those of the given study keys), in a fixed order."""
    out = []
    for st in STUDIES:
        if studies is not None and st.key not in studies:
            continue
        for se in st.series:
            for n in range(1, se.images + 1):
                out.append(make_image(st, se, n))
    return out


def write_images(directory: Path, studies: list[str] | None = None) -> list[Path]:
    """Write the images as DICOM files into `directory`; return the paths in a fixed order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in all_images(studies):
        p = directory / (ds.SOPInstanceUID.removeprefix(UID_ROOT + ".").replace(".", "_") + ".dcm")
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def write_query(path: Path, ds: Dataset) -> Path:
    """Write a query identifier as a DICOM file that findscu/movescu accept."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    meta.MediaStorageSOPInstanceUID = UID_ROOT + ".9.9"
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    ds = ds.copy()
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


def query(level: str, **keys: object) -> Dataset:
    """A C-FIND/C-MOVE identifier: QueryRetrieveLevel plus keyword=value (None = empty key)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, "" if v is None else v)
    return ds
