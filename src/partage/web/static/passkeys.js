/* Passkey (WebAuthn) ceremonies. Loaded as a file: the CSP forbids inline scripts.
 *
 * A form marked data-passkey="register" or data-passkey="authenticate" carries its CSRF field
 * and an empty hidden "credential" field. On submit we fetch the options from
 * data-options-url (POST, same CSRF field), run the browser ceremony, put the answer in
 * "credential" and submit the form normally, so the server answers with a page.
 */
(function () {
  "use strict";

  function toBuffer(b64url) {
    var text = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) { text += "="; }
    var binary = atob(text);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBuffer(item.id), transports: item.transports };
    });
  }

  function fetchOptions(form) {
    var body = new URLSearchParams();
    var csrf = form.querySelector("input[name=csrf_token]");
    if (csrf) { body.append("csrf_token", csrf.value); }
    return fetch(form.dataset.optionsUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body
    }).then(function (response) {
      if (!response.ok) { throw new Error("options " + response.status); }
      return response.json();
    });
  }

  function register(options) {
    options.challenge = toBuffer(options.challenge);
    options.user.id = toBuffer(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    return navigator.credentials.create({ publicKey: options }).then(function (credential) {
      return {
        id: credential.id,
        rawId: toB64url(credential.rawId),
        type: credential.type,
        authenticatorAttachment: credential.authenticatorAttachment,
        clientExtensionResults: credential.getClientExtensionResults(),
        response: {
          clientDataJSON: toB64url(credential.response.clientDataJSON),
          attestationObject: toB64url(credential.response.attestationObject),
          transports: credential.response.getTransports ? credential.response.getTransports() : []
        }
      };
    });
  }

  function authenticate(options) {
    options.challenge = toBuffer(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    return navigator.credentials.get({ publicKey: options }).then(function (credential) {
      var response = credential.response;
      return {
        id: credential.id,
        rawId: toB64url(credential.rawId),
        type: credential.type,
        authenticatorAttachment: credential.authenticatorAttachment,
        clientExtensionResults: credential.getClientExtensionResults(),
        response: {
          clientDataJSON: toB64url(response.clientDataJSON),
          authenticatorData: toB64url(response.authenticatorData),
          signature: toB64url(response.signature),
          userHandle: response.userHandle ? toB64url(response.userHandle) : null
        }
      };
    });
  }

  function showError(form) {
    var status = form.querySelector("[data-passkey-status]");
    if (status) {
      status.hidden = false;
      status.focus();
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset || !form.dataset.passkey) { return; }
    var field = form.querySelector("input[name=credential]");
    if (field.value) { return; }  // second pass: the ceremony is done, submit for real
    event.preventDefault();
    var ceremony = form.dataset.passkey === "register" ? register : authenticate;
    fetchOptions(form)
      .then(ceremony)
      .then(function (answer) {
        field.value = JSON.stringify(answer);
        form.submit();
      })
      .catch(function () { showError(form); });
  });

  if (window.PublicKeyCredential) {
    document.documentElement.classList.add("has-passkeys");
  }
})();
