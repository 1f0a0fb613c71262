"""Opening the gpiozero pin factory the [gpio] config section names.

The config sections of the GPIO parts (keypad, buttons, USB keypad, LEDs, buzzer, drawer) live in
pitill.config, which imports no driver; this module turns GpioConfig into a pin factory.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from pitill.config import GpioConfig
from pitill.errors import HardwareError

if TYPE_CHECKING:
    from gpiozero.pins import Factory

PIN_FACTORY_FIX = (
    "on a Pi install lgpio (apt install python3-lgpio; a Pi 5 needs it) or set gpio.pin_factory "
    '/ GPIOZERO_PIN_FACTORY; off a Pi use gpio.pin_factory = "mock"'
)


def set_lgpio_workdir() -> str:
    """Give lgpio a private writable directory (LG_WD) unless one is set; returns it.

    lgpio makes its notification pipe (.lgd-nfy*, named per process, not per user) in LG_WD, by
    default the working directory, when it loads. That directory may be read-only for the user
    (`sudo -u pitill pitill doctor` from a home directory) or someone's checkout: the import then
    fails, or leaves the pipe behind. The unit sets LG_WD=/run/pitill; a run by hand gets a
    temporary directory, removed at exit. Call it before anything imports lgpio.
    """
    workdir = os.environ.get("LG_WD")
    if not workdir:
        workdir = tempfile.mkdtemp(prefix="pitill-lgpio-")
        atexit.register(shutil.rmtree, workdir, True)
        os.environ["LG_WD"] = workdir
    return workdir


def open_pin_factory(config: GpioConfig) -> Factory:
    """The gpiozero pin factory the config asks for; HardwareError says why one cannot load.

    The message is "<reason>; <PIN_FACTORY_FIX>".
    """
    set_lgpio_workdir()  # lgpio (also behind rpigpio's rpi-lgpio on a Pi 5) reads it on import
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory, GPIOZeroError

    name = config.pin_factory
    if not name:
        with warnings.catch_warnings(record=True) as fallbacks:
            warnings.simplefilter("always")
            try:
                Device.ensure_pin_factory()
            except BadPinFactory:
                tried = "; ".join(
                    str(w.message).removeprefix("Falling back from ") for w in fallbacks
                )
                raise HardwareError(
                    "no GPIO pin factory could be loaded (not a Raspberry Pi?): "
                    f"{tried or 'none installed'}; {PIN_FACTORY_FIX}"
                ) from None
        factory: Factory = Device.pin_factory
        return factory
    entry = next((e for e in entry_points(group="gpiozero_pin_factories") if e.name == name), None)
    if entry is None:
        raise HardwareError(f"gpiozero has no pin factory named {name!r}; {PIN_FACTORY_FIX}")
    try:
        made: Factory = entry.load()()
    except (ImportError, OSError, RuntimeError, GPIOZeroError) as exc:
        raise HardwareError(
            f"pin factory {name!r} could not be loaded: {exc}; {PIN_FACTORY_FIX}"
        ) from None
    return made
