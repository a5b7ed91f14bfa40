//! The HTTP flags of every client command, as Consul's `command/flags/http.go`
//! defines them, and their resolution with Consul's environment variables into
//! the settings of one agent connection (`api.DefaultConfig` + `api.NewClient`).

use std::path::PathBuf;

use clap::{ArgAction, Args};

use crate::config::flags::parse_go_bool;

/// `ClientFlags()`: where the agent is and how to authenticate to it.
#[derive(Args, Debug, Clone, Default)]
pub struct ClientFlags {
    /// The address and port of the Consul HTTP agent (`host:port`, `http://`,
    /// `https://` or `unix://`). Env: CONSUL_HTTP_ADDR. Default 127.0.0.1:8500.
    #[arg(long = "http-addr", value_name = "ADDRESS")]
    pub http_addr: Option<String>,
    /// ACL token to use in the request. Env: CONSUL_HTTP_TOKEN.
    #[arg(long, value_name = "VALUE")]
    pub token: Option<String>,
    /// File containing the ACL token; wins over -token. Env: CONSUL_HTTP_TOKEN_FILE.
    #[arg(long = "token-file", value_name = "VALUE")]
    pub token_file: Option<String>,
    /// CA file for TLS to the agent. Env: CONSUL_CACERT.
    #[arg(long = "ca-file", value_name = "VALUE")]
    pub ca_file: Option<String>,
    /// Directory of CA certificates for TLS to the agent. Env: CONSUL_CAPATH.
    #[arg(long = "ca-path", value_name = "VALUE")]
    pub ca_path: Option<String>,
    /// Client certificate for TLS with verify_incoming. Env: CONSUL_CLIENT_CERT.
    #[arg(long = "client-cert", value_name = "VALUE")]
    pub client_cert: Option<String>,
    /// Client key for TLS with verify_incoming. Env: CONSUL_CLIENT_KEY.
    #[arg(long = "client-key", value_name = "VALUE")]
    pub client_key: Option<String>,
    /// Server name (SNI) to verify the agent's certificate against. Env: CONSUL_TLS_SERVER_NAME.
    #[arg(long = "tls-server-name", value_name = "VALUE")]
    pub tls_server_name: Option<String>,
}

/// `ServerFlags()`: the datacenter to ask and whether a stale read is fine.
#[derive(Args, Debug, Clone, Default)]
pub struct ServerFlags {
    /// Name of the datacenter to query (default: the agent's).
    #[arg(long, value_name = "VALUE")]
    pub datacenter: Option<String>,
    /// Permit any Consul server (non-leader) to respond to this request.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    pub stale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// Everything needed to reach and authenticate to the agent, flags merged over
/// the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub scheme: Scheme,
    /// `host:port`; for a unix socket, the socket's path.
    pub address: String,
    /// A reverse proxy's path prefix (`http://host/consul` → `/consul`).
    pub path_prefix: String,
    pub unix_socket: Option<PathBuf>,
    pub token: String,
    pub datacenter: Option<String>,
    /// CONSUL_HTTP_AUTH: `user[:password]`.
    pub basic_auth: Option<(String, String)>,
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca_file: Option<String>,
    pub ca_path: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    /// CONSUL_HTTP_SSL_VERIFY=false.
    pub insecure: bool,
}

impl Settings {
    /// Resolves the flags over the process environment.
    pub fn resolve(client: &ClientFlags, server: Option<&ServerFlags>) -> Result<Settings, String> {
        Settings::resolve_with(client, server, |k| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        })
    }

    /// Resolves with `env` standing in for the environment (empty counts as unset,
    /// as in Go's `os.Getenv(...) != ""` checks).
    pub fn resolve_with(
        client: &ClientFlags,
        server: Option<&ServerFlags>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, String> {
        let pick = |flag: &Option<String>, var: &str| flag.clone().or_else(|| env(var));
        let mut scheme = match env("CONSUL_HTTP_SSL").as_deref().map(parse_go_bool) {
            Some(Ok(true)) => Scheme::Https,
            _ => Scheme::Http,
        };
        let mut address = pick(&client.http_addr, "CONSUL_HTTP_ADDR")
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "127.0.0.1:8500".to_string());
        let mut path_prefix = String::new();
        let mut unix_socket = None;
        if let Some((proto, rest)) = address.clone().split_once("://") {
            match proto {
                // An explicit http:// never turns off TLS asked for by CONSUL_HTTP_SSL.
                "http" => {}
                "https" => scheme = Scheme::Https,
                "unix" => unix_socket = Some(PathBuf::from(rest)),
                other => return Err(format!("Unknown protocol scheme: {other}")),
            }
            address = rest.to_string();
            if proto != "unix"
                && let Some((host, prefix)) = rest.split_once('/')
            {
                address = host.to_string();
                path_prefix = format!("/{prefix}");
            }
        }

        // As api.NewClient: a token file, when given and not empty, wins over any token.
        let mut token = pick(&client.token, "CONSUL_HTTP_TOKEN").unwrap_or_default();
        if let Some(file) = pick(&client.token_file, "CONSUL_HTTP_TOKEN_FILE") {
            let data = std::fs::read_to_string(&file).map_err(|e| {
                format!(
                    "Error loading token file: open {file}: {}",
                    super::ui::go_os_error(&e)
                )
            })?;
            let from_file = data.trim();
            if !from_file.is_empty() {
                token = from_file.to_string();
            }
        }

        let basic_auth = env("CONSUL_HTTP_AUTH").map(|auth| match auth.split_once(':') {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None => (auth, String::new()),
        });
        let insecure = matches!(
            env("CONSUL_HTTP_SSL_VERIFY").as_deref().map(parse_go_bool),
            Some(Ok(false))
        );
        Ok(Settings {
            scheme,
            address,
            path_prefix,
            unix_socket,
            token,
            datacenter: server
                .and_then(|s| s.datacenter.clone())
                .filter(|d| !d.is_empty()),
            basic_auth,
            tls: TlsSettings {
                ca_file: pick(&client.ca_file, "CONSUL_CACERT"),
                ca_path: pick(&client.ca_path, "CONSUL_CAPATH"),
                cert_file: pick(&client.client_cert, "CONSUL_CLIENT_CERT"),
                key_file: pick(&client.client_key, "CONSUL_CLIENT_KEY"),
                server_name: pick(&client.tls_server_name, "CONSUL_TLS_SERVER_NAME"),
                insecure,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(flags: ClientFlags, env: &[(&str, &str)]) -> Result<Settings, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve_with(&flags, None, |k| env.get(k).cloned())
    }

    fn addr(a: &str) -> ClientFlags {
        ClientFlags {
            http_addr: Some(a.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn default_address_and_env_override() {
        let s = resolve(ClientFlags::default(), &[]).unwrap();
        assert_eq!(
            (s.scheme, s.address.as_str()),
            (Scheme::Http, "127.0.0.1:8500")
        );
        let s = resolve(
            ClientFlags::default(),
            &[("CONSUL_HTTP_ADDR", "10.0.0.1:8500")],
        )
        .unwrap();
        assert_eq!(s.address, "10.0.0.1:8500");
        let s = resolve(addr("h:1"), &[("CONSUL_HTTP_ADDR", "10.0.0.1:8500")]).unwrap();
        assert_eq!(s.address, "h:1", "the flag wins over the environment");
    }

    #[test]
    fn address_schemes() {
        let s = resolve(addr("https://h:8501/consul/x"), &[]).unwrap();
        assert_eq!(s.scheme, Scheme::Https);
        assert_eq!(s.address, "h:8501");
        assert_eq!(s.path_prefix, "/consul/x");
        let s = resolve(addr("http://h:1"), &[("CONSUL_HTTP_SSL", "true")]).unwrap();
        assert_eq!(
            s.scheme,
            Scheme::Https,
            "http:// does not undo CONSUL_HTTP_SSL"
        );
        let s = resolve(addr("unix:///tmp/consul.sock"), &[]).unwrap();
        assert_eq!(s.unix_socket, Some(PathBuf::from("/tmp/consul.sock")));
        assert_eq!(
            resolve(addr("ftp://h"), &[]).unwrap_err(),
            "Unknown protocol scheme: ftp"
        );
    }

    #[test]
    fn token_file_wins_over_token() {
        let dir = std::env::temp_dir().join(format!("concord-token-{}", std::process::id()));
        std::fs::write(&dir, "  from-file\n").unwrap();
        let flags = ClientFlags {
            token: Some("flag".into()),
            ..Default::default()
        };
        let s = resolve(flags.clone(), &[("CONSUL_HTTP_TOKEN", "env")]).unwrap();
        assert_eq!(s.token, "flag");
        let s = resolve(ClientFlags::default(), &[("CONSUL_HTTP_TOKEN", "env")]).unwrap();
        assert_eq!(s.token, "env");
        let file = dir.display().to_string();
        let s = resolve(flags, &[("CONSUL_HTTP_TOKEN_FILE", &file)]).unwrap();
        assert_eq!(s.token, "from-file");
        std::fs::remove_file(&dir).unwrap();
        let err = resolve(
            ClientFlags {
                token_file: Some("/nonexistent/t".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "Error loading token file: open /nonexistent/t: no such file or directory"
        );
    }
}
