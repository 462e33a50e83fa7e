//! Vectors from AWS's published SigV4 test suite (example credentials `AKIDEXAMPLE`, 2015-08-30
//! 12:36:00 UTC, us-east-1, service `service`) and the IAM example of the SigV4 documentation;
//! then the Bedrock-specific double encoding of the path.

use chrono::{TimeZone, Utc};

use super::*;

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn suite_params(service: &'static str) -> SigningParams<'static> {
    SigningParams {
        region: "us-east-1",
        service,
        credentials: Credentials {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: SUITE_SECRET,
            session_token: None,
        },
        time: Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap(),
        sign_content_sha256: false,
    }
}

fn suite_authorization(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders={signed_headers}, Signature={signature}"
    )
}

const HOST: (&str, &str) = ("Host", "example.amazonaws.com");

#[test]
fn suite_get_vanilla() {
    let request = SignableRequest {
        method: "GET",
        path: "/",
        query: "",
        headers: &[HOST],
        payload: b"",
    };
    let signed = sign(&request, &suite_params("service"));
    assert_eq!(signed.x_amz_date, "20150830T123600Z");
    assert_eq!(
        signed.authorization,
        suite_authorization(
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        )
    );
}

#[test]
fn suite_post_vanilla_and_query() {
    let mut request = SignableRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &[HOST],
        payload: b"",
    };
    let signed = sign(&request, &suite_params("service"));
    assert_eq!(
        signed.authorization,
        suite_authorization(
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        )
    );
    request.query = "Param1=value1";
    let signed = sign(&request, &suite_params("service"));
    assert_eq!(
        signed.authorization,
        suite_authorization(
            "host;x-amz-date",
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
        )
    );
}

#[test]
fn suite_get_vanilla_query_order() {
    // Given out of order: the canonical query sorts the parameters.
    let request = SignableRequest {
        method: "GET",
        path: "/",
        query: "Param2=value2&Param1=value1",
        headers: &[HOST],
        payload: b"",
    };
    let signed = sign(&request, &suite_params("service"));
    assert_eq!(
        signed.authorization,
        suite_authorization(
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        )
    );
}

#[test]
fn suite_post_x_www_form_urlencoded() {
    let request = SignableRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &[("Content-Type", "application/x-www-form-urlencoded"), HOST],
        payload: b"Param1=value1",
    };
    let params = suite_params("service");
    let headers = canonical_header_map(request.headers);
    let mut with_date = headers.clone();
    with_date.insert("x-amz-date".into(), "20150830T123600Z".into());
    let payload_hash = hex::encode(Sha256::digest(request.payload));
    let (canonical, _) = canonical_request(&request, &with_date, &payload_hash);
    assert_eq!(
        canonical,
        "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n\
         x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n\
         9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    );
    // The string to sign carries this hash of the canonical request.
    assert_eq!(
        hex::encode(Sha256::digest(canonical.as_bytes())),
        "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"
    );
    let signed = sign(&request, &params);
    assert_eq!(
        signed.authorization,
        suite_authorization(
            "content-type;host;x-amz-date",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        )
    );
}

/// Suite vectors for encoding: the path and the query as given are encoded (once more).
#[test]
fn suite_unreserved_and_utf8_paths_and_queries() {
    const UNRESERVED: &str = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let unreserved_query = format!("{UNRESERVED}={UNRESERVED}");
    let unreserved_path = format!("/{UNRESERVED}");
    let cases: [(&str, &str, &str); 4] = [
        (
            unreserved_path.as_str(),
            "",
            "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        ),
        (
            "/\u{1234}",
            "",
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        ),
        (
            "/",
            unreserved_query.as_str(),
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        ),
        (
            "/",
            "\u{1234}=bar",
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        ),
    ];
    for (path, query, signature) in cases {
        let request = SignableRequest {
            method: "GET",
            path,
            query,
            headers: &[HOST],
            payload: b"",
        };
        assert_eq!(
            sign(&request, &suite_params("service")).authorization,
            suite_authorization("host;x-amz-date", signature),
            "path {path:?} query {query:?}"
        );
    }
}

/// Suite vectors for header canonicalization: trimmed values with inner runs of spaces
/// collapsed, and a repeated header joined in order.
#[test]
fn suite_header_value_trim_and_key_duplicate() {
    let trim = SignableRequest {
        method: "GET",
        path: "/",
        query: "",
        headers: &[
            HOST,
            ("My-Header1", " value1"),
            ("My-Header2", " \"a   b   c\""),
        ],
        payload: b"",
    };
    assert_eq!(
        sign(&trim, &suite_params("service")).authorization,
        suite_authorization(
            "host;my-header1;my-header2;x-amz-date",
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
        )
    );
    let duplicate = SignableRequest {
        headers: &[
            HOST,
            ("My-Header1", "value2"),
            ("My-Header1", "value2"),
            ("My-Header1", "value1"),
        ],
        ..trim
    };
    assert_eq!(
        sign(&duplicate, &suite_params("service")).authorization,
        suite_authorization(
            "host;my-header1;x-amz-date",
            "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"
        )
    );
}

/// The worked example of the SigV4 documentation: IAM `ListUsers`.
#[test]
fn documentation_iam_list_users_example() {
    let request = SignableRequest {
        method: "GET",
        path: "/",
        query: "Action=ListUsers&Version=2010-05-08",
        headers: &[
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", "iam.amazonaws.com"),
        ],
        payload: b"",
    };
    let signed = sign(&request, &suite_params("iam"));
    assert_eq!(
        signed.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, \
         Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    );
}

/// The key-derivation example of the SigV4 documentation.
#[test]
fn documentation_signing_key_example() {
    assert_eq!(
        hex::encode(signing_key(SUITE_SECRET, "20120215", "us-east-1", "iam")),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
}

#[test]
fn bedrock_model_id_is_encoded_once_on_the_wire_and_twice_when_signed() {
    let path =
        crate::translate::bedrock::converse_path("anthropic.claude-3-5-sonnet-20240620-v1:0", true);
    assert_eq!(
        path,
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    );
    assert_eq!(
        canonical_uri(&path),
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse-stream"
    );
    // An inference-profile ARN: its `/` and `:` are escaped in the one path segment.
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.x-v1:0";
    let path = crate::translate::bedrock::converse_path(arn, false);
    assert_eq!(path.matches('/').count(), 3);
    assert!(canonical_uri(&path).contains("%252F"));
}

#[test]
fn session_token_and_content_hash_are_signed_and_returned() {
    let mut params = suite_params(BEDROCK_SERVICE);
    params.credentials.session_token = Some("TOKEN");
    params.sign_content_sha256 = true;
    let request = SignableRequest {
        method: "POST",
        path: "/model/m%3A0/converse",
        query: "",
        headers: &[
            ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
            ("content-type", "application/json"),
            // Ignored: set by `sign` from its own inputs.
            ("X-Amz-Date", "19990101T000000Z"),
        ],
        payload: b"{}",
    };
    let signed = sign(&request, &params);
    assert!(signed.authorization.contains(
        "/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;\
         x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="
    ));
    assert_eq!(signed.x_amz_security_token.as_deref(), Some("TOKEN"));
    assert_eq!(
        signed.x_amz_content_sha256,
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(signed.pairs(true).len(), 4);
    // The secret never shows in debug output.
    assert!(!format!("{:?}", params.credentials).contains(SUITE_SECRET));
}

#[test]
fn header_values_are_trimmed_and_repeats_joined() {
    let map = canonical_header_map(&[("My-Header1", "  a   b  c "), ("my-header1", "d")]);
    assert_eq!(map["my-header1"], "a b c,d");
}
