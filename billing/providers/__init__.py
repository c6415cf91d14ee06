"""One package or module per provider; here only what every layer names them by."""

PROVIDER_NAMES = {  # as each provider writes its own name: for buttons, notices and logs people read
    "yoomoney": "YooMoney", "yookassa": "YooKassa", "cloudpayments": "CloudPayments", "payme": "Payme",
    "click": "Click",
}
