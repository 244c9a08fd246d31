"""Every table of the ledger, for the migrations' metadata (`ledger.storage.base.Base`).

Importing the feature model modules registers their tables. The attestation layer's
tables (`attestation.anchoring.records`) register themselves on the same base when that
package is imported; the ledger never imports it.
"""

from ledger.access import models as access_models
from ledger.certificates import models as certificate_models
from ledger.credentials import models as credential_models
from ledger.log import models as log_models
from ledger.meters import models as meter_models
from ledger.statemap import models as statemap_models
from ledger.storage.base import Base

FEATURE_MODELS = (
    log_models,
    access_models,
    meter_models,
    credential_models,
    certificate_models,
    statemap_models,
)
metadata = Base.metadata
