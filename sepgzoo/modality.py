"""The two modalities, spelled `visible` and `infrared` everywhere a user can see them."""

from enum import Enum

from sepgzoo.errors import UserError


class Modality(str, Enum):
    VISIBLE = "visible"
    INFRARED = "infrared"


#: the modality names in the model's order (visible stream first), as plain strings
MODALITIES = (Modality.VISIBLE.value, Modality.INFRARED.value)


ALIASES = {
    "visible": Modality.VISIBLE,
    "vis": Modality.VISIBLE,
    "rgb": Modality.VISIBLE,
    "color": Modality.VISIBLE,
    "infrared": Modality.INFRARED,
    "ir": Modality.INFRARED,
    "nir": Modality.INFRARED,
    "thermal": Modality.INFRARED,
}


def as_modality(value: "str | Modality") -> Modality:
    """Parse a modality name; short forms (vis, rgb, color, ir, nir, thermal) are accepted as aliases."""
    if isinstance(value, Modality):
        return value
    try:
        return ALIASES[str(value).lower()]
    except KeyError:
        raise UserError(f"unknown modality {value!r}; expected 'visible' or 'infrared'") from None
