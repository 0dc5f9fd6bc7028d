// The login form: says so when the last attempt failed.
if (new URLSearchParams(location.search).has("failed")) {
  document.getElementById("login-failed").hidden = false;
}
