//! Open vSwitch's unixctl protocol: JSON-RPC 1.0 over a stream socket, one request object after
//! another (no delimiter between them). A request is `{"method": M, "params": [strings], "id":
//! ID}`; the reply echoes the id with `{"result": TEXT, "error": null}` or `{"result": null,
//! "error": TEXT}`, TEXT ending in a newline unless empty (as OvS's unixctl_command_reply does).

use serde_json::{json, Value};

/// One parsed request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub method: String,
    pub params: Vec<String>,
    /// `None` for a notification (no id), which gets no reply.
    pub id: Option<Value>,
}

/// Why a JSON value is not a request we can answer; the text is the error reply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("request is not a JSON object with a string \"method\"")]
    NotRequest,
    #[error("\"{0}\" command has non-string argument")]
    NonStringParam(String),
}

/// Reads a request out of a JSON value. `Err` carries the id (if any) to address the error to.
pub fn parse(v: &Value) -> Result<Request, (Option<Value>, WireError)> {
    let id = v.get("id").filter(|id| !id.is_null()).cloned();
    let Some(method) = v.get("method").and_then(Value::as_str) else {
        return Err((id, WireError::NotRequest));
    };
    let params = match v.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| p.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| (id.clone(), WireError::NonStringParam(method.to_string())))?,
        Some(_) => return Err((id, WireError::NotRequest)),
    };
    Ok(Request { method: method.to_string(), params, id })
}

fn with_newline(mut text: String) -> String {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The reply to request `id`: `Ok(text)` as a result, `Err(text)` as an error.
pub fn reply(id: &Value, outcome: Result<String, String>) -> Value {
    match outcome {
        Ok(text) => json!({"result": with_newline(text), "error": null, "id": id}),
        Err(text) => json!({"result": null, "error": with_newline(text), "id": id}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_as_ovs_appctl_sends_them() {
        let r = parse(&json!({"id": 0, "method": "fdb/show", "params": ["br0"]})).unwrap();
        assert_eq!(r, Request { method: "fdb/show".into(), params: vec!["br0".into()], id: Some(json!(0)) });
        let n = parse(&json!({"id": null, "method": "exit", "params": []})).unwrap();
        assert_eq!(n.id, None, "a notification");
        let e = parse(&json!({"id": 7, "method": "vlog/set", "params": [1]})).unwrap_err();
        assert_eq!(e, (Some(json!(7)), WireError::NonStringParam("vlog/set".into())));
        assert_eq!(parse(&json!([1, 2])).unwrap_err().1, WireError::NotRequest);
        assert_eq!(parse(&json!({"id": 1, "method": 5})).unwrap_err().1, WireError::NotRequest);
    }

    #[test]
    fn replies_end_in_a_newline_and_echo_the_id() {
        assert_eq!(reply(&json!(3), Ok("hi".into())), json!({"result": "hi\n", "error": null, "id": 3}));
        assert_eq!(
            reply(&json!("x"), Err("no\n".into())),
            json!({"result": null, "error": "no\n", "id": "x"})
        );
        assert_eq!(reply(&json!(1), Ok(String::new()))["result"], "", "empty stays empty");
    }
}
