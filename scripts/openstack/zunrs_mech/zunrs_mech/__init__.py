"""An ML2 mechanism driver for the zun-compute-rs test stack.

Neutron runs API-only here (no L2 agent). Without a mechanism driver that
binds, every port ends with binding:vif_type=binding_failed and kuryr cannot
plug it. This driver binds each port on its first segment with vif_type
`bridge` (kuryr-lib's `bridge` binding script: a veth pair whose host end
joins the linux bridge brq<network id[:11]>) and marks it ACTIVE.

    [ml2] mechanism_drivers = zunrs_bind_all
    [zunrs_bind_all] vif_type = bridge
"""
from neutron_lib.api.definitions import portbindings
from neutron_lib import constants
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg
from oslo_log import log

LOG = log.getLogger(__name__)
cfg.CONF.register_opts([
    cfg.StrOpt('vif_type', default=portbindings.VIF_TYPE_BRIDGE,
               help='binding:vif_type of every port this driver binds'),
    cfg.StrOpt('bridge_prefix', default='brq',
               help='prefix of the linux bridge name put in vif_details'),
], group='zunrs_bind_all')


class BindEveryPort(api.MechanismDriver):
    def initialize(self):
        self._vif_type = cfg.CONF.zunrs_bind_all.vif_type
        LOG.info('zunrs_bind_all binds every port as %s', self._vif_type)

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        segments = context.segments_to_bind
        if not segments:
            return
        segment = segments[0]
        bridge = cfg.CONF.zunrs_bind_all.bridge_prefix + context.current['network_id'][:11]
        details = {portbindings.CAP_PORT_FILTER: False, 'bridge_name': bridge}
        context.set_binding(segment[api.ID], self._vif_type, details,
                            status=constants.PORT_STATUS_ACTIVE)
        LOG.debug('zunrs_bind_all bound port %s on host %s',
                  context.current['id'], context.host)
