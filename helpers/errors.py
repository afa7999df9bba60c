"""The errors the series raises for bad input: each message names the file or row and says what to do."""


class DataError(ValueError):
    """A data file or row that the series cannot use as it is. Taught in 01_preprocessing_and_splits."""


class PatientLeakageError(DataError):
    """The same patient appears in more than one split. Taught in 01_preprocessing_and_splits."""
