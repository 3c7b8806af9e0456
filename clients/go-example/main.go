// Recognise one image with the digits Recognizer over gRPC: go run . ADDRESS IMAGE
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	digitsv1 "example.com/digitsclient/gen/digits/v1"
)

func main() {
	conn, err := grpc.NewClient(os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	image, err := os.ReadFile(os.Args[2])
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := digitsv1.NewRecognizerClient(conn).Recognize(ctx, &digitsv1.RecognizeRequest{Image: image})
	if err != nil {
		log.Fatal(err) // e.g. "code = InvalidArgument desc = the bytes are not an image ..."
	}
	fmt.Printf("digit %d, confidence %.4f, model %s\n", answer.GetDigit(), answer.GetConfidence(), answer.GetModelVersion())
}
