"""The ``budget`` plugin: USD spend limits per key, org and bridge, per UTC day or month.

Reserve → settle → refund (see :mod:`junction.traffic.ledger`): before the call, its expected cost
(prompt estimate plus output cap at the model's price) is reserved in every budget that applies,
atomically, on the call's store batch; after it, the reservation is replaced by the real cost of
the real usage at the price of the deployment that answered (in the background); a failed call
costs what it used (usually nothing). Refusals are 429 ``budget_exceeded``. Cache hits cost $0.
"""

from junction.middleware.budget.config import BudgetConfig
from junction.plugins import MiddlewareSpec, StagePlacement, created_on_demand, hookimpl


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="budget", config_type=BudgetConfig,
                            create=created_on_demand("junction.middleware.budget.stage:BudgetStage"),
                            enabled_by_default=False,
                            stage=StagePlacement(phase="admission", after=("rate-limit",))))
