"""Which published keys are usable, and how a token's header picks one."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from jwt.algorithms import ECAlgorithm

from gateway.auth.jwks import KeySet
from gateway.errors import AuthenticationError
from tests.support.jose import SigningKey, b64url

ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


def parse(*jwks: dict) -> KeySet:
    return KeySet.parse({"keys": list(jwks)}, ALGORITHMS)


def test_supported_signature_keys_are_kept():
    keys = parse(SigningKey.rsa("r").public_jwk(), SigningKey.ec("e").public_jwk(),
                 SigningKey.ed25519("o").public_jwk())
    assert keys.kids == ["r", "e", "o"]


def _secp256k1() -> dict:
    jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256K1()).public_key(), as_dict=True)
    return {**jwk, "kid": "k256"}


def _x25519() -> dict:
    raw = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    return {"kty": "OKP", "crv": "X25519", "x": b64url(raw), "kid": "x"}


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}, id="symmetric-oct"),
        pytest.param({**SigningKey.rsa("enc").public_jwk(), "use": "enc"}, id="use-enc"),
        pytest.param({**SigningKey.rsa("oaep").public_jwk(), "alg": "RSA-OAEP"}, id="encryption-alg"),
        pytest.param({**SigningKey.rsa("hs").public_jwk(), "alg": "HS256"}, id="hmac-alg"),
        pytest.param({**SigningKey.rsa("ops").public_jwk(), "key_ops": ["encrypt"]}, id="key-ops-no-verify"),
        pytest.param({**SigningKey.rsa("priv").public_jwk(), "d": "AQAB"}, id="private-material"),
        pytest.param(SigningKey.rsa("small", bits=1024).public_jwk(), id="rsa-1024"),
        pytest.param({**SigningKey.rsa().public_jwk(), "kid": 7}, id="kid-not-string"),
        pytest.param({**SigningKey.rsa().public_jwk(), "kid": "k" * 300}, id="kid-too-long"),
        pytest.param({"kty": "RSA", "kid": "junk", "n": "!!", "e": "AQAB"}, id="garbage-modulus"),
        pytest.param(_secp256k1(), id="ec-secp256k1"),
        pytest.param(_x25519(), id="okp-x25519"),
        pytest.param("not-an-object", id="not-an-object"),
    ],
)
def test_unusable_keys_are_skipped(jwk):
    keys = parse(jwk, SigningKey.rsa("good").public_jwk())
    assert keys.kids == ["good"]


def test_document_without_keys_list_is_empty():
    assert KeySet.parse({"keys": "nope"}, ALGORITHMS).keys == ()
    assert KeySet.parse({}, ALGORITHMS).keys == ()


def test_key_without_kid_is_found_when_it_is_the_only_one_of_its_type():
    rsa_key, ec_key = SigningKey.rsa(), SigningKey.ec()
    keys = parse(rsa_key.public_jwk(), ec_key.public_jwk())
    assert keys.find(None, "RS256").key_id == rsa_key.kid
    assert keys.find(None, "ES256").key_id == ec_key.kid
    assert keys.find(None, "EdDSA") is None


def test_token_without_kid_is_refused_when_several_keys_share_its_type():
    keys = parse(SigningKey.rsa("a").public_jwk(), SigningKey.rsa("b").public_jwk())
    with pytest.raises(AuthenticationError) as caught:
        keys.find(None, "RS256")
    assert "kid required" in caught.value.reason


def test_encryption_keys_do_not_count_against_the_only_signing_key():
    keys = parse(SigningKey.rsa("sig").public_jwk(),
                 {**SigningKey.rsa("enc").public_jwk(), "use": "enc"})
    assert keys.find(None, "RS256").key_id == "sig"


def test_duplicate_kid_across_types_is_resolved_by_type_and_refused_within_one():
    keys = parse(SigningKey.rsa("same").public_jwk(), SigningKey.ec("same").public_jwk())
    assert keys.find("same", "ES256").key_type == "EC"
    assert keys.find("same", "RS256").key_type == "RSA"
    twins = parse(SigningKey.rsa("twin").public_jwk(), SigningKey.rsa("twin").public_jwk())
    with pytest.raises(AuthenticationError):
        twins.find("twin", "RS256")


def test_unknown_kid_is_not_found():
    assert parse(SigningKey.rsa("a").public_jwk()).find("b", "RS256") is None
