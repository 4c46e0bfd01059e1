import dataclasses


@dataclasses.dataclass(frozen=True)
class BadExample:
    """An example of a dataset split that the input pipeline cannot use.

    `check_dataset` returns them; `write_bad_examples` and
    `read_bad_examples` store them as JSON, and `build_dataset(...,
    exclude=[b.image for b in bad])` leaves them out.

    Attributes:
        split: canonical split name (`"train"`, `"validation"`, `"test"`).
        image: the image path as the dataset's layout lists it.
        label: the label path, `None` for an unlabelled split.
        reason: every problem found, `"; "`-joined; each starts with
            `image` or `label`, e.g. `"label size 7x9 differs from image
            size 30x40 (height x width)"`.

    Example:

    >>> bad = BadExample("train", "a.jpg", "a.png", "label file is missing")
    >>> bad.describe()
    'a.png: label file is missing'
    """

    split: str
    image: str
    label: str | None
    reason: str

    def describe(self) -> str:
        """One line naming the file at fault and the reason.

        Returns:
            `"<file>: <reason>"`, where the file is the label when the first
            problem is the label's, else the image.
        """
        at_fault = self.label if self.reason.startswith("label") else None
        return f"{at_fault or self.image}: {self.reason}"
