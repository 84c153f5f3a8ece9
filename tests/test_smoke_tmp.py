def test_client_credentials(client, make_client):
    c, secret = make_client("system/*.rs system/DocumentReference.cruds")
    r = client.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(c.client_id, secret))
    assert r.status_code == 200, r.text
    tok = r.json()["access_token"]
    r = client.post("/oauth2/introspect", data={"token": tok}, auth=(c.client_id, secret))
    assert r.json()["active"], r.text
    r = client.get("/healthz"); assert r.status_code == 200
    r = client.get("/.well-known/openid-configuration"); assert r.status_code == 200
    r = client.get("/oauth2/jwks"); assert len(r.json()["keys"]) == 2
