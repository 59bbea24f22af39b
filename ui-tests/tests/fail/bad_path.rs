struct NoSlash;

#[switchboard::hub("chat")]
impl NoSlash {}

struct Root;

#[switchboard::hub("/")]
impl Root {}

struct Query;

#[switchboard::hub("/chat?x=1")]
impl Query {}

struct NotAString;

#[switchboard::hub(42)]
impl NotAString {}

struct NoComma;

#[switchboard::hub("/chat" detailed_errors = true)]
impl NoComma {}

fn main() {}
