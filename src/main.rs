fn main() {
    println!("wmbusd: being built");
}
