struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn greet(&self, name: &str) -> String {
        format!("hello {name}")
    }

    async fn sum(&self, numbers: &mut Vec<i32>) -> i32 {
        numbers.iter().sum()
    }
}

fn main() {}
