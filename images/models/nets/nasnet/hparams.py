"""The configuration object of the NASNet builders (what slim takes from
``tf.contrib.training.HParams``, which TensorFlow 2 no longer ships)."""
import copy
import json


class HParams(object):
    """Named hyper-parameters: attributes, with the ``HParams`` methods slim code calls.

    Example::

        config = nasnet.large_imagenet_config()
        config.set_hparam('num_cells', 12)
        nasnet.build_nasnet_large(images, 1001, config=config)
    """

    def __init__(self, **kwargs):
        for name, value in kwargs.items():
            self.add_hparam(name, value)

    def add_hparam(self, name, value):
        """Adds ``name``; an existing name or one of the methods is an error."""
        if name in self.__dict__ or hasattr(type(self), name):
            raise ValueError('Hyperparameter name is reserved or already used: %s' % name)
        setattr(self, name, value)

    def set_hparam(self, name, value):
        """Sets an existing hyper-parameter (an unknown name raises, as in TF's HParams)."""
        if name not in self.__dict__:
            raise ValueError('Unknown hyperparameter %s; known: %s'
                             % (name, ', '.join(sorted(self.__dict__))))
        setattr(self, name, value)

    def del_hparam(self, name):
        """Removes ``name`` if present."""
        self.__dict__.pop(name, None)

    def override_from_dict(self, values_dict):
        """Sets every ``name: value`` of ``values_dict``; returns self."""
        for name, value in values_dict.items():
            self.set_hparam(name, value)
        return self

    def values(self):
        """A ``{name: value}`` copy."""
        return copy.deepcopy(self.__dict__)

    def get(self, key, default=None):
        """The value of ``key``, or ``default``."""
        return self.__dict__.get(key, default)

    def to_json(self, indent=None, separators=None, sort_keys=False):
        """The values as JSON."""
        return json.dumps(self.values(), indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def __contains__(self, key):
        return key in self.__dict__

    def __repr__(self):
        return 'HParams(%s)' % ', '.join('%s=%r' % kv for kv in sorted(self.__dict__.items()))
