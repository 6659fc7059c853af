"""PLSC's ``plsc_serving`` package on fastnn: ``from plsc_serving.run import PLSCServer``."""
__version__ = "0.1.6+fastnn"
