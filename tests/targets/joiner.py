"""The main thread in join(), four busy Python worker threads."""
import threading


def work():
    total = 0
    while True:
        total += sum(i * i for i in range(200))


threads = [threading.Thread(target=work, daemon=True) for _ in range(4)]
for thread in threads:
    thread.start()
print("ready", flush=True)
threads[0].join()
