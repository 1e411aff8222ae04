//! kubo's way of passing RPC arguments: `?arg=...` repeated, and flags as `key=true|false`.

use super::ApiError;

/// `?arg=...` values, in order, as kubo's RPC passes positional arguments.
pub(super) fn args(request_query: Option<&str>) -> Vec<String> {
    let query = request_query.unwrap_or_default();
    url_args(query)
}

pub(super) fn url_args(query: &str) -> Vec<String> {
    url_params(query)
        .into_iter()
        .filter(|(key, _)| key == "arg")
        .map(|(_, value)| value)
        .collect()
}

/// Every `key=value` of a query, decoded, in order.
pub(super) fn url_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// A boolean option as kubo reads one: a bare `?flag` is true.
pub(super) fn flag(key: &str, value: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::BadArgument(format!(
            "option \"{key}\": could not parse value \"{value}\" as bool"
        ))),
    }
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn one_arg(query: Option<&str>) -> Result<String, ApiError> {
    args(query)
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::BadArgument("argument \"arg\" is required".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kubo_style_arguments() {
        assert_eq!(
            url_args("arg=%2Fip4%2F127.0.0.1%2Ftcp%2F1&arg=b+c&other=x"),
            vec!["/ip4/127.0.0.1/tcp/1".to_owned(), "b c".to_owned()]
        );
        assert_eq!(url_args("arg=%zz"), vec!["%zz".to_owned()]);
        assert!(url_args("").is_empty());
    }
}
