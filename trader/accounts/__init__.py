"""Many accounts on one host: ``config/accounts.yaml`` (:mod:`trader.accounts.config`) and the supervising
runner behind ``trader accounts`` (:mod:`trader.accounts.runner`)."""

from trader.accounts.config import Account, AccountsConfigError, load_accounts
from trader.accounts.runner import AccountsRunner

__all__ = ["Account", "AccountsConfigError", "AccountsRunner", "load_accounts"]
