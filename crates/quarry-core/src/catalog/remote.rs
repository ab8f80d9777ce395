//! Object stores other than the local disk: `s3://`, `gs://`, `az://` and
//! `http(s)://`. A store is built from the standard environment variables
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as DataFusion and DuckDB read them, with
//! the session's `SET s3_… / gcs_… / azure_…` settings on top. Errors from a
//! store become messages that say what went wrong with which object.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::ClientConfigKey;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::error::{QuarryError, Result};

/// The URL schemes quarry reads through a remote object store.
const REMOTE_SCHEMES: &[&str] = &[
    "s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss", "adl", "http", "https",
];

/// The URL of `location` if it names an object in a remote store; an
/// error for a URL whose scheme quarry cannot read (`ftp://…`).
pub fn remote_url(location: &str) -> Option<Result<Url>> {
    let (scheme, _) = location.split_once("://")?;
    let scheme = scheme.to_lowercase();
    if scheme == "file" {
        return None;
    }
    if !REMOTE_SCHEMES.contains(&scheme.as_str()) {
        let is_scheme = scheme.len() > 1
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        return is_scheme.then(|| {
            Err(QuarryError::Io(format!(
                "cannot read '{location}': unsupported scheme '{scheme}://' (quarry reads \
                 local paths, file://, s3://, gs://, az://, azure://, abfs(s)://, http(s)://)"
            )))
        });
    }
    Some(
        Url::parse(location).map_err(|e| QuarryError::Io(format!("invalid URL '{location}': {e}"))),
    )
}

/// One setting of a remote store: its name in `SET` and whether `SHOW`
/// hides its value.
struct Setting {
    name: &'static str,
    secret: bool,
}

const SETTINGS: &[Setting] = &[
    Setting {
        name: "s3_region",
        secret: false,
    },
    Setting {
        name: "s3_endpoint",
        secret: false,
    },
    Setting {
        name: "s3_access_key_id",
        secret: false,
    },
    Setting {
        name: "s3_secret_access_key",
        secret: true,
    },
    Setting {
        name: "s3_session_token",
        secret: true,
    },
    Setting {
        name: "s3_url_style",
        secret: false,
    },
    Setting {
        name: "s3_allow_http",
        secret: false,
    },
    Setting {
        name: "gcs_service_account_path",
        secret: false,
    },
    Setting {
        name: "gcs_service_account_key",
        secret: true,
    },
    Setting {
        name: "azure_account_name",
        secret: false,
    },
    Setting {
        name: "azure_account_key",
        secret: true,
    },
    Setting {
        name: "azure_sas_token",
        secret: true,
    },
    Setting {
        name: "azure_endpoint",
        secret: false,
    },
    Setting {
        name: "azure_allow_http",
        secret: false,
    },
    Setting {
        name: "azure_use_emulator",
        secret: false,
    },
];

/// The `SET` options of remote stores; unset ones come from the environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteOptions {
    values: BTreeMap<&'static str, String>,
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        _ => Err(QuarryError::Config(format!(
            "invalid value '{value}' for setting '{name}': expected true or false"
        ))),
    }
}

impl RemoteOptions {
    /// Every setting name, for `SHOW ALL` and "did you mean" hints.
    pub fn names() -> impl Iterator<Item = &'static str> {
        SETTINGS.iter().map(|s| s.name)
    }

    fn setting(name: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.name == name)
    }

    /// True if `name` is a remote store setting.
    pub fn knows(name: &str) -> bool {
        Self::setting(&name.to_lowercase()).is_some()
    }

    /// Applies `SET name = value`; checks the value's form now, so that a
    /// typo shows at SET and not at the first read.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let name = name.to_lowercase();
        let Some(setting) = Self::setting(&name) else {
            return Err(QuarryError::Config(format!("unknown setting '{name}'")));
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            self.values.remove(setting.name);
            return Ok(());
        }
        match setting.name {
            "s3_url_style" if !matches!(value.to_lowercase().as_str(), "path" | "vhost") => {
                return Err(QuarryError::Config(format!(
                    "invalid value '{value}' for setting 's3_url_style': expected 'path' or 'vhost'"
                )));
            }
            "s3_allow_http" | "azure_allow_http" | "azure_use_emulator" => {
                parse_bool(setting.name, &value)?;
            }
            "s3_endpoint" | "azure_endpoint" => {
                if let Err(e) = Url::parse(&value) {
                    return Err(QuarryError::Config(format!(
                        "invalid value '{value}' for setting '{}': {e} (expected a URL such as http://127.0.0.1:9000)",
                        setting.name
                    )));
                }
            }
            _ => {}
        }
        self.values.insert(setting.name, value);
        Ok(())
    }

    /// The value `SHOW name` prints: secrets masked, unset ones empty.
    pub fn get(&self, name: &str) -> Option<String> {
        let setting = Self::setting(&name.to_lowercase())?;
        Some(match self.values.get(setting.name) {
            Some(_) if setting.secret => "********".to_string(),
            Some(v) => v.clone(),
            None => String::new(),
        })
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|s| s.as_str())
    }

    fn flag(&self, name: &str) -> Option<bool> {
        self.value(name).and_then(|v| parse_bool(name, v).ok())
    }

    /// Builds the store of `url`'s bucket (or host). Only the scheme and
    /// the authority of `url` matter.
    pub fn build_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let base = &url[..url::Position::BeforePath];
        let failed = |e: object_store::Error| {
            QuarryError::Io(format!("cannot set up the object store for '{url}': {e}"))
        };
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "s3" | "s3a" => {
                let mut b = AmazonS3Builder::from_env()
                    .with_url(base)
                    .with_retry(retry())
                    .with_config(AmazonS3ConfigKey::Client(CONNECT_TIMEOUT), CONNECT_SECONDS);
                for (name, key) in [
                    ("s3_region", AmazonS3ConfigKey::Region),
                    ("s3_endpoint", AmazonS3ConfigKey::Endpoint),
                    ("s3_access_key_id", AmazonS3ConfigKey::AccessKeyId),
                    ("s3_secret_access_key", AmazonS3ConfigKey::SecretAccessKey),
                    ("s3_session_token", AmazonS3ConfigKey::Token),
                ] {
                    if let Some(v) = self.value(name) {
                        b = b.with_config(key, v);
                    }
                }
                if let Some(style) = self.value("s3_url_style") {
                    b = b.with_virtual_hosted_style_request(style.eq_ignore_ascii_case("vhost"));
                }
                // An endpoint given as http:// asks for plain HTTP, as
                // DuckDB's s3_use_ssl = false does; s3_allow_http decides
                // when it is set.
                let plain_endpoint = self
                    .value("s3_endpoint")
                    .is_some_and(|e| e.to_lowercase().starts_with("http://"));
                if let Some(allow) = self
                    .flag("s3_allow_http")
                    .or(plain_endpoint.then_some(true))
                {
                    b = b.with_allow_http(allow);
                }
                Arc::new(b.build().map_err(failed)?)
            }
            "gs" | "gcs" => {
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_url(base)
                    .with_retry(retry())
                    .with_config(GoogleConfigKey::Client(CONNECT_TIMEOUT), CONNECT_SECONDS);
                for (name, key) in [
                    ("gcs_service_account_path", GoogleConfigKey::ServiceAccount),
                    (
                        "gcs_service_account_key",
                        GoogleConfigKey::ServiceAccountKey,
                    ),
                ] {
                    if let Some(v) = self.value(name) {
                        b = b.with_config(key, v);
                    }
                }
                Arc::new(b.build().map_err(failed)?)
            }
            "az" | "azure" | "abfs" | "abfss" | "adl" => {
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_url(base)
                    .with_retry(retry())
                    .with_config(AzureConfigKey::Client(CONNECT_TIMEOUT), CONNECT_SECONDS);
                for (name, key) in [
                    ("azure_account_name", AzureConfigKey::AccountName),
                    ("azure_account_key", AzureConfigKey::AccessKey),
                    ("azure_sas_token", AzureConfigKey::SasKey),
                    ("azure_endpoint", AzureConfigKey::Endpoint),
                    ("azure_use_emulator", AzureConfigKey::UseEmulator),
                ] {
                    if let Some(v) = self.value(name) {
                        b = b.with_config(key, v);
                    }
                }
                if let Some(allow) = self.flag("azure_allow_http") {
                    b = b.with_allow_http(allow);
                }
                Arc::new(b.build().map_err(failed)?)
            }
            "http" | "https" => {
                let options = ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_allow_http(url.scheme() == "http");
                Arc::new(
                    HttpBuilder::new()
                        .with_url(base)
                        .with_retry(retry())
                        .with_client_options(options)
                        .build()
                        .map_err(failed)?,
                )
            }
            other => {
                return Err(QuarryError::Io(format!(
                    "unsupported URL scheme '{other}://' in '{url}' (expected s3, gs, az or https)"
                )))
            }
        };
        Ok(store)
    }
}

/// A few quick retries: a server that is down or a bad endpoint shows as an
/// error within seconds, not after object_store's default of 3 minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
    }
}

/// A server that does not answer within it counts as down. (Set as a key,
/// not as client options: those would replace what `from_env` read, such
/// as `AWS_ALLOW_HTTP`.)
const CONNECT_TIMEOUT: ClientConfigKey = ClientConfigKey::ConnectTimeout;
const CONNECT_SECONDS: &str = "5s";

/// The message for a failed request of a store about the object at `url`
/// (and the byte `range` of it asked for).
pub fn store_error(
    e: &object_store::Error,
    url: &str,
    range: Option<&std::ops::Range<u64>>,
) -> QuarryError {
    let what = match range {
        Some(r) => format!("bytes {}..{} of '{url}'", r.start, r.end),
        None => format!("'{url}'"),
    };
    let detail = short_detail(&e.to_string());
    let status = http_status(&e.to_string());
    let not_found = matches!(e, object_store::Error::NotFound { .. }) || status == Some(404);
    let denied = matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || matches!(status, Some(401 | 403));
    let message = if not_found {
        if detail.contains("NoSuchBucket") {
            format!("not found: {what} (no such bucket)")
        } else {
            format!("not found: {what}")
        }
    } else if denied {
        format!(
            "access denied to {what}: check the credentials (SET s3_access_key_id / s3_secret_access_key, or the AWS_* / GOOGLE_* / AZURE_* variables): {detail}"
        )
    } else if is_connect_error(e) {
        format!("cannot connect to the server of {what}: {detail}")
    } else if detail.ends_with("builder error") {
        // reqwest refuses a plain http:// URL unless HTTP is allowed.
        format!(
            "cannot read {what}: {detail} (for a plain http:// endpoint, SET s3_allow_http = true or AWS_ALLOW_HTTP=true)"
        )
    } else {
        format!("cannot read {what}: {detail}")
    };
    QuarryError::Io(message)
}

/// The HTTP status of a failed request, as object_store's message gives it
/// ("… non-2xx status code: 404 Not Found …"): its error kinds cover only
/// some requests (a listing's 404 is a generic error).
fn http_status(detail: &str) -> Option<u16> {
    let at = detail.find("status code: ")? + "status code: ".len();
    detail.get(at..at + 3)?.parse().ok()
}

/// A store's error without the XML or JSON body of the server's answer:
/// its code and message stay, e.g. "… 403 Forbidden (SignatureDoesNotMatch:
/// The request signature we calculated does not match …)".
fn short_detail(detail: &str) -> String {
    let tag = |name: &str| -> Option<&str> {
        let open = format!("<{name}>");
        let from = detail.find(&open)? + open.len();
        let to = from + detail[from..].find(&format!("</{name}>"))?;
        Some(&detail[from..to])
    };
    let Some(body) = detail.find(": <?xml").or_else(|| detail.find(": <Error")) else {
        return detail.to_string();
    };
    let head = &detail[..body];
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{head} ({code}: {message})"),
        (Some(code), None) => format!("{head} ({code})"),
        _ => head.to_string(),
    }
}

/// True when the request never reached a server (refused, unreachable, DNS).
fn is_connect_error(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            if matches!(http.kind(), HttpErrorKind::Connect) {
                return true;
            }
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_values_checked_at_set() {
        let mut o = RemoteOptions::default();
        o.set("S3_SECRET_ACCESS_KEY", "hunter2").unwrap();
        o.set("s3_region", "eu-west-1").unwrap();
        assert_eq!(o.get("s3_secret_access_key").unwrap(), "********");
        assert_eq!(o.get("s3_region").unwrap(), "eu-west-1");
        assert_eq!(o.get("s3_session_token").unwrap(), "");
        assert!(o.get("s3_nonsense").is_none());
        let e = o.set("s3_url_style", "sideways").unwrap_err().to_string();
        assert!(e.contains("'path' or 'vhost'"), "{e}");
        let e = o.set("s3_allow_http", "perhaps").unwrap_err().to_string();
        assert!(e.contains("true or false"), "{e}");
        let e = o.set("s3_endpoint", "not a url").unwrap_err().to_string();
        assert!(e.contains("s3_endpoint"), "{e}");
        // An empty value unsets.
        o.set("s3_region", "").unwrap();
        assert_eq!(o.get("s3_region").unwrap(), "");
    }

    #[test]
    fn a_server_answer_is_cut_to_its_status_code_and_message() {
        let detail = "Generic S3 error: Error performing GET http://h/b?list-type=2 in 3ms - Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>b</BucketName></Error>";
        assert_eq!(http_status(detail), Some(404));
        assert_eq!(
            short_detail(detail),
            "Generic S3 error: Error performing GET http://h/b?list-type=2 in 3ms - Server returned non-2xx status code: 404 Not Found (NoSuchBucket: The specified bucket does not exist)"
        );
        assert_eq!(short_detail("plain"), "plain");
        assert_eq!(http_status("no status here"), None);
    }

    #[test]
    fn only_remote_schemes_are_remote() {
        assert!(remote_url("s3://b/k.parquet").is_some());
        assert!(remote_url("HTTPS://h/k.csv").is_some());
        assert!(remote_url("data/x.parquet").is_none());
        assert!(remote_url("file:///tmp/x.parquet").is_none());
        let err = remote_url("ftp://h/x.parquet").unwrap().unwrap_err();
        assert!(
            err.to_string().contains("unsupported scheme 'ftp://'"),
            "{err}"
        );
    }

    #[test]
    fn a_store_is_built_per_scheme_without_touching_the_network() {
        let mut o = RemoteOptions::default();
        for (k, v) in [
            ("s3_region", "us-east-1"),
            ("s3_access_key_id", "k"),
            ("s3_secret_access_key", "s"),
            ("s3_endpoint", "http://127.0.0.1:1"),
            ("s3_url_style", "path"),
        ] {
            o.set(k, v).unwrap();
        }
        for url in ["s3://bucket/a/b.parquet", "http://127.0.0.1:1/x.csv"] {
            o.build_store(&Url::parse(url).unwrap()).unwrap();
        }
    }
}
