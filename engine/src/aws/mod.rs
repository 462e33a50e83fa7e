//! What calling AWS services needs beyond HTTP: credentials and request signing (`sigv4`).

pub mod sigv4;

/// AWS credentials held by a compiled plan. `Debug` shows the access key id only.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: Box<str>,
    pub secret_access_key: Box<str>,
    pub session_token: Option<Box<str>>,
}

impl AwsCredentials {
    pub fn borrowed(&self) -> sigv4::Credentials<'_> {
        sigv4::Credentials {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            session_token: self.session_token.as_deref(),
        }
    }
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.borrowed().fmt(f)
    }
}
