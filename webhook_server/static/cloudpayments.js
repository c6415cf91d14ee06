// The CloudPayments widget page: opens the widget with the configuration the server put in the page.
// A file of ours rather than an inline script, so that the page's Content-Security-Policy allows scripts
// only from this server and the widget's host.
(function () {
  var config = JSON.parse(document.getElementById("cloudpayments-config").textContent);
  function openWidget() {
    if (!window.cp) { return; }
    // The widget's callbacks only move the payer on: the payment counts once CloudPayments' Pay
    // notification reaches the server, and the page we return to says "confirming" until then.
    new window.cp.CloudPayments({ language: config.language }).pay(config.scheme, config.options, {
      onSuccess: function () { window.location.assign(config.returnUrl); },
      onFail: function () { document.getElementById("cloudpayments-open").focus(); }
    });
  }
  document.getElementById("cloudpayments-open").addEventListener("click", openWidget);
  openWidget();
})();
