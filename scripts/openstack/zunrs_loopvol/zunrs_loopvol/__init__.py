"""zun-compute-rs' test-bed Cinder volume driver: a volume is a sparse file, and a
connection is a loop device on this very machine.

This kernel has no iSCSI, NVMe-oF, RBD or NFS, but it has loop devices. So:

  create_volume            <zunrs_loopvol_dir>/<volume id>.img, sparse, `size` GiB
  initialize_connection    the file bound to a free loop device (`losetup --find --show`),
                           or the one it is bound to already; the answer is os-brick's
                           `local` connection: {"driver_volume_type": "local",
                           "data": {"device_path": "/dev/loopN"}}
  terminate_connection,    every loop device bound to the file released (`losetup -d`)
  remove_export            (cinder-volume calls remove_export at every detach)
  delete_volume            released, and the file removed

cinder-volume runs as root on the compute host (the loop device is local to it). No
snapshots, clones or images (the base class raises NotImplementedError).

    [zunrs_loopvol]
    volume_driver = zunrs_loopvol.LoopDeviceDriver
    volume_backend_name = zunrs_loopvol
    zunrs_loopvol_dir = /var/tmp/zun-rs/openstack/state/cinder/volumes
"""
import os
import re
import subprocess

from oslo_config import cfg
from oslo_log import log as logging

from cinder.volume import driver

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt('zunrs_loopvol_dir', default='/var/tmp/zun-rs/loopvol',
               help='Where the sparse files backing the volumes live.'),
]
cfg.CONF.register_opts(OPTS, group='backend_defaults')

_ID = re.compile(r'^[0-9a-fA-F-]{36}$')


def _losetup(*args):
    res = subprocess.run(('losetup',) + args, capture_output=True, text=True, timeout=60)
    if res.returncode:
        raise RuntimeError('losetup %s failed (%s): %s' % (' '.join(args), res.returncode, res.stderr.strip()))
    return res.stdout


class LoopDeviceDriver(driver.VolumeDriver):
    VERSION = '0.1.0'
    CI_WIKI_NAME = 'zun-compute-rs'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(OPTS)

    @property
    def _root(self):
        return self.configuration.safe_get('zunrs_loopvol_dir')

    def _backing(self, volume):
        if not _ID.match(str(volume.id)):
            raise RuntimeError('unexpected volume id %r' % (volume.id,))
        return os.path.join(self._root, '%s.img' % volume.id)

    def _bound(self, path):
        if not os.path.exists(path):
            return []
        return [ln.split(':')[0] for ln in _losetup('--associated', path).splitlines() if ln.strip()]

    def _unbind(self, path):
        for dev in self._bound(path):
            try:
                _losetup('--detach', dev)
                LOG.info('zunrs_loopvol: %s released from %s', dev, path)
            except RuntimeError as e:
                LOG.warning('zunrs_loopvol: %s', e)

    # --- set-up and capacity -------------------------------------------------
    def do_setup(self, context):
        os.makedirs(self._root, exist_ok=True)

    def check_for_setup_error(self):
        _losetup('--version')

    def _update_volume_stats(self):
        fs = os.statvfs(self._root)
        gib = float(1 << 30)
        name = self.configuration.safe_get('volume_backend_name') or 'zunrs_loopvol'
        self._stats = {
            'volume_backend_name': name, 'vendor_name': 'zun-compute-rs', 'driver_version': self.VERSION,
            'storage_protocol': 'local',
            'pools': [{
                'pool_name': name,
                'total_capacity_gb': round(fs.f_blocks * fs.f_frsize / gib, 2),
                'free_capacity_gb': round(fs.f_bavail * fs.f_frsize / gib, 2),
                'reserved_percentage': 0, 'thin_provisioning_support': True,
                'max_over_subscription_ratio': 20.0, 'QoS_support': False, 'multiattach': False,
            }],
        }

    # --- volumes ---------------------------------------------------------------
    def create_volume(self, volume):
        path = self._backing(volume)
        with open(path, 'xb') as f:
            f.truncate(int(volume.size) * (1 << 30))
        LOG.info('zunrs_loopvol: %s GiB volume %s at %s', volume.size, volume.id, path)
        return {}

    def delete_volume(self, volume):
        path = self._backing(volume)
        self._unbind(path)
        if os.path.exists(path):
            os.remove(path)
        LOG.info('zunrs_loopvol: volume %s deleted', volume.id)

    def extend_volume(self, volume, new_size):
        path = self._backing(volume)
        with open(path, 'r+b') as f:
            f.truncate(int(new_size) * (1 << 30))
        for dev in self._bound(path):
            _losetup('--set-capacity', dev)

    def local_path(self, volume):
        return self._backing(volume)

    # --- exports: the loop device itself ------------------------------------------
    def create_export(self, context, volume, connector):
        return None

    def ensure_export(self, context, volume):
        return None

    def remove_export(self, context, volume):
        self._unbind(self._backing(volume))

    def initialize_connection(self, volume, connector, **kwargs):
        path = self._backing(volume)
        if not os.path.exists(path):
            raise RuntimeError('zunrs_loopvol: volume %s has no backing file' % volume.id)
        bound = self._bound(path)
        dev = bound[0] if bound else _losetup('--find', '--show', path).strip()
        LOG.info('zunrs_loopvol: volume %s is %s for host %s', volume.id, dev, (connector or {}).get('host'))
        return {'driver_volume_type': 'local', 'data': {'device_path': dev}}

    def terminate_connection(self, volume, connector, **kwargs):
        self._unbind(self._backing(volume))
