"""The route table: every URL the web app serves."""

from aiohttp import web

from billing.providers.click import Action as ClickAction
from webhook_server.admin import actions as admin_actions, lists as admin_lists, views as admin
from webhook_server.metrics import metrics_view
from webhook_server.views.api import (
    confirm_invoice_view,
    create_invoice_view,
    find_invoices_view,
    get_invoice_view,
    get_subscription_view,
    patch_subscription_view,
    refund_invoice_view,
)
from webhook_server.views.click import click_handler
from webhook_server.views.cloudpayments import notify_cloudpayments, widget_page as cloudpayments_widget_page
from webhook_server.views.consent import choose as choose_payment
from webhook_server.views.donate import donate, donate_page
from webhook_server.views.extras import extra_refunded_view, list_extras_view
from webhook_server.views.health import healthz, readyz
from webhook_server.views.konsol import notify_konsol
from webhook_server.views.notify import notify_handler
from webhook_server.views.pay import pay_page
from webhook_server.views.payme import notify_payme, pay_with_saved_card
from webhook_server.views.payout_resolve import attach_view, fail_view, resend_view
from webhook_server.views.payouts import (
    accept_payout_view,
    balance_view,
    get_payout_view,
    list_payouts_view,
    reject_payout_view,
)
from webhook_server.views.promo_api import create_promo_view, get_promo_view, list_promo_view
from webhook_server.views.promo_page import apply_promo
from webhook_server.views.renewal import cancel_renewal, renewal_page
from webhook_server.views.yookassa import notify_yookassa, pay_with_yookassa

ROUTES = [
    web.get("/pay/{label}", pay_page, name="pay"),
    web.get("/pay/{label}/renewal", renewal_page, name="pay_renewal"),
    web.post("/pay/{label}/renewal", cancel_renewal, name="pay_renewal_cancel"),
    web.post("/pay/{label}/yookassa", pay_with_yookassa, name="pay_yookassa"),
    web.post("/pay/{label}/choose", choose_payment, name="pay_choose"),
    web.post("/pay/{label}/promo", apply_promo, name="pay_promo"),
    web.post("/notify/yookassa", notify_yookassa, name="notify_yookassa"),
    web.post("/notify/yoomoney", notify_handler("yoomoney"), name="notify_yoomoney"),
    web.post("/notify/click/prepare", click_handler(ClickAction.PREPARE), name="notify_click_prepare"),
    web.post("/notify/click/complete", click_handler(ClickAction.COMPLETE), name="notify_click_complete"),
    web.route("*", "/notify/payme", notify_payme, name="notify_payme"),  # non-POST gets Payme's -32300
    web.post("/pay/{label}/payme/card", pay_with_saved_card, name="pay_payme_card"),
    web.get("/donate", donate_page, name="donate"),
    web.post("/donate", donate, name="donate_choice"),
    web.post("/api/invoices", create_invoice_view, name="api_create_invoice"),
    web.get("/api/invoices", find_invoices_view, name="api_find_invoices"),
    web.get("/api/invoices/{label}", get_invoice_view, name="api_invoice"),
    web.post("/api/invoices/{label}/refund", refund_invoice_view, name="api_refund"),
    web.post("/api/invoices/{label}/confirm", confirm_invoice_view, name="api_confirm"),
    web.get("/api/extras", list_extras_view, name="api_extras"),
    web.post("/api/promo-codes", create_promo_view, name="api_create_promo"),
    web.get("/api/promo-codes", list_promo_view, name="api_promo_codes"),
    web.get("/api/promo-codes/{code}", get_promo_view, name="api_promo_code"),
    web.post("/api/extras/{provider}/{operation_id}/refunded", extra_refunded_view, name="api_extra_refunded"),
    web.post("/pay/{label}/cloudpayments", cloudpayments_widget_page, name="pay_cloudpayments"),
    web.post("/notify/cloudpayments/{kind}", notify_cloudpayments, name="notify_cloudpayments"),
    web.get("/api/users/{user_id}/subscription", get_subscription_view, name="api_subscription"),
    web.patch("/api/users/{user_id}/subscription", patch_subscription_view, name="api_subscription_patch"),
    web.post("/notify/konsol", notify_konsol, name="notify_konsol"),
    web.get("/api/payouts", list_payouts_view, name="api_payouts"),
    web.get("/api/payouts/balance", balance_view, name="api_payouts_balance"),
    web.get("/api/payouts/{label}", get_payout_view, name="api_payout"),
    web.post("/api/payouts/{label}/accept", accept_payout_view, name="api_payout_accept"),
    web.post("/api/payouts/{label}/reject", reject_payout_view, name="api_payout_reject"),
    web.post("/api/payouts/{label}/attach", attach_view, name="api_payout_attach"),
    web.post("/api/payouts/{label}/fail", fail_view, name="api_payout_fail"),
    web.post("/api/payouts/{label}/resend", resend_view, name="api_payout_resend"),
    web.get("/healthz", healthz, name="healthz"),
    web.get("/readyz", readyz, name="readyz"),
    web.get("/metrics", metrics_view, name="metrics"),
]
ROUTES += [  # the admin dashboard (webhook_server/admin)
    web.get("/admin", admin.overview_page, name="admin"),
    web.get("/admin/login", admin.login_page, name="admin_login"),
    web.get("/admin/login/telegram", admin.widget_login, name="admin_login_telegram"),
    web.get("/admin/login/link/{token}", admin.link_page, name="admin_login_link"),
    web.post("/admin/login/link/{token}", admin.redeem_link, name="admin_login_redeem"),
    web.post("/admin/logout", admin.logout, name="admin_logout"),
    web.get("/admin/payments", admin.payments_list, name="admin_payments"),
    web.get("/admin/users", admin.users_search, name="admin_users"),
    web.get("/admin/users/{user_id}", admin.user_page, name="admin_user"),
    web.get("/admin/invoices/{label}/refund", admin.refund_confirm, name="admin_refund_confirm"),
    web.post("/admin/invoices/{label}/refund", admin.refund_action, name="admin_refund"),
    web.get("/admin/users/{user_id}/grant", admin_actions.grant_confirm, name="admin_grant_confirm"),
    web.post("/admin/users/{user_id}/grant", admin_actions.grant_action, name="admin_grant"),
    web.get("/admin/users/{user_id}/auto-renew", admin_actions.auto_renew_confirm, name="admin_auto_renew_confirm"),
    web.post("/admin/users/{user_id}/auto-renew", admin_actions.auto_renew_off, name="admin_auto_renew_off"),
    web.get("/admin/exports", admin_actions.exports_page, name="admin_exports"),
    web.get("/admin/invoices", admin_lists.invoices_list, name="admin_invoices"),
    web.get("/admin/invoices/{label}", admin_lists.invoice_page, name="admin_invoice"),
    web.post("/admin/invoices/{label}/confirm", admin_lists.confirm_action, name="admin_confirm"),
    web.get("/admin/dunning", admin_lists.dunning_list, name="admin_dunning"),
    web.get("/admin/payouts", admin_lists.payouts_list, name="admin_payouts"),
    web.get("/admin/payouts/{label}", admin_lists.payout_page, name="admin_payout"),
    web.post("/admin/payouts/{label}/decide", admin_lists.payout_decide, name="admin_payout_decide"),
    web.get("/admin/promo", admin_lists.promo_list, name="admin_promo"),
    web.get("/admin/promo/{code}", admin_lists.promo_code_page, name="admin_promo_code"),
    web.get("/admin/jobs", admin_lists.jobs_list, name="admin_jobs"),
    web.post("/admin/jobs/requeue", admin_lists.jobs_requeue, name="admin_jobs_requeue"),
    web.get("/admin/export/payments.csv", admin_actions.export_payments, name="admin_export_payments"),
    web.get("/admin/export/subscribers.csv", admin_actions.export_subscribers, name="admin_export_subscribers"),
]
