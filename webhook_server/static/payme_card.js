// The payment page's Payme card binding: cards.create (save) → cards.get_verify_code → cards.verify straight
// at Payme with the merchant id alone; only the verified card's token is posted to our server, which then
// charges the invoice. The page's Content-Security-Policy lets this script reach Payme's API host only.
(function () {
  var config = JSON.parse(document.getElementById("payme-card-config").textContent);
  var start = document.getElementById("payme-card-start");
  var verify = document.getElementById("payme-card-verify");
  var problem = document.getElementById("payme-card-error");
  var token = null, requestId = 0;

  function rpc(method, params) {
    requestId += 1;
    return fetch(config.apiUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Auth": config.merchantId },
      body: JSON.stringify({ id: requestId, method: method, params: params })
    }).then(function (response) { return response.json(); }, function () { throw { network: true }; })
      .then(function (answer) { if (answer.error) { throw answer.error; } return answer.result; });
  }
  function messageOf(error) {
    var message = error && error.message;
    if (message && typeof message === "object") { message = message[config.language] || message.en || message.ru; }
    return message || String((error && error.code) || "");
  }
  function busy(form, on) { form.querySelector("button").disabled = on; }
  function failed(form) {
    return function (error) {
      problem.textContent = error && error.network ? config.texts.network
        : config.texts.failed.replace("{error}", messageOf(error));
      busy(form, false);
    };
  }
  start.addEventListener("submit", function (event) {
    event.preventDefault();
    problem.textContent = "";
    busy(start, true);
    var number = document.getElementById("payme-card-number").value.replace(/\D/g, "");
    var expire = document.getElementById("payme-card-expire").value.replace(/\D/g, "");
    rpc("cards.create", { card: { number: number, expire: expire }, save: true })
      .then(function (result) {
        token = result.card.token;
        document.getElementById("payme-card-number").value = "";
        return rpc("cards.get_verify_code", { token: token });
      })
      .then(function (result) {
        document.getElementById("payme-card-phone").textContent = config.texts.code_sent.replace("{phone}", result.phone);
        start.hidden = true;
        verify.hidden = false;
        document.getElementById("payme-card-code").focus();
      })
      .catch(failed(start));
  });
  verify.addEventListener("submit", function (event) {
    event.preventDefault();
    problem.textContent = "";
    busy(verify, true);
    rpc("cards.verify", { token: token, code: document.getElementById("payme-card-code").value.trim() })
      .then(function (result) {
        document.getElementById("payme-card-token").value = result.card.token || token;
        document.getElementById("pay-payme-card").submit();
      })
      .catch(failed(verify));
  });
})();
